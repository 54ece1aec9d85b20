//! Scraping tandem's admin endpoint and reading the samples with a real Prometheus text-format
//! parser.

use std::net::SocketAddr;

use prometheus_parse::{Sample, Scrape, Value};

use super::get;

pub struct Metrics(pub Scrape);

impl Metrics {
    /// The samples of `name` whose labels include every pair of `labels`.
    pub fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        (self.0.samples.iter()).filter(move |sample| {
            sample.metric == name
                && (labels.iter()).all(|(key, value)| sample.labels.get(key) == Some(*value))
        })
    }

    /// The one counter or gauge `name` with `labels` (a histogram's count); `None` when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.samples(name, labels).map(number);
        let value = found.next();
        assert!(
            found.next().is_none(),
            "{name} {labels:?} matches several series"
        );
        value
    }

    /// The sum over every series of `name` with `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels).map(number).sum()
    }

    /// Like [`Metrics::value`], for a series that must exist.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no series {name} {labels:?}"))
    }
}

fn number(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
        Value::Histogram(buckets) => (buckets.iter())
            .find(|bucket| bucket.less_than.is_infinite())
            .map_or(0.0, |bucket| bucket.count),
        Value::Summary(_) => panic!("{} is a summary", sample.metric),
    }
}

/// `GET /metrics` from `admin`, parsed.
pub async fn scrape(admin: SocketAddr) -> Metrics {
    let answer = get(admin, "/metrics")
        .await
        .expect("the admin endpoint answers");
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    Metrics(Scrape::parse(lines).expect("valid Prometheus text format"))
}
