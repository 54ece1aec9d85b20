//! The first eligible server in list order: how backup servers are used unless `all_backups`
//! asks for them to be balanced (HAProxy's default for backups).

use super::{available, Key, Selector, ServerView};
use crate::config::Server;

pub struct FirstUp {
    /// Config indexes of the servers not drained, in list order.
    order: Box<[usize]>,
}

impl FirstUp {
    pub fn new(servers: &[Server]) -> Self {
        let order = servers.iter().enumerate().filter(|(_, s)| s.weight > 0);
        Self {
            order: order.map(|(i, _)| i).collect(),
        }
    }
}

impl Selector for FirstUp {
    fn pick(&self, servers: &dyn ServerView, _key: &Key<'_>, exclude: &[usize]) -> Option<usize> {
        (self.order.iter().copied()).find(|&server| available(servers, server, exclude))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{picks, retry_order, servers, View, KEY};
    use super::*;

    #[test]
    fn always_the_first_eligible_in_list_order() {
        let selector = FirstUp::new(&servers(&[0, 1, 1, 1]));
        let mut view = View::all_up(4);
        assert_eq!(picks(&selector, &view, 3), [1, 1, 1], "0 is drained");
        view.up[1] = false;
        assert_eq!(picks(&selector, &view, 2), [2, 2]);
        view.full[2] = true;
        assert_eq!(
            picks(&selector, &view, 2),
            [3, 3],
            "a full server is skipped"
        );
        assert_eq!(retry_order(&selector, &View::all_up(4), &KEY), [1, 2, 3]);
        view.up = vec![false; 4];
        assert_eq!(selector.pick(&view, &KEY, &[]), None);
    }
}
