//! How an answer's addresses become numbered servers (`web-1`, `web-2`...). An address keeps
//! its number for as long as answers keep it, so its server keeps its name, health and
//! counters; a new address takes the lowest free number. Numbers are never reused while their
//! address is still answered, and answers in another order change nothing.

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// 1-based: the suffix of the server's name.
    pub number: u32,
    pub address: SocketAddr,
}

/// The slots after an answer of `answer` (at `port`) to a name that had `previous`: at most
/// `max`, those already held first, then new addresses in the answer's order. Sorted by
/// number.
pub fn assign(previous: &[Slot], answer: &[IpAddr], port: u16, max: usize) -> Vec<Slot> {
    let answered = |address: &SocketAddr| answer.contains(&address.ip()) && address.port() == port;
    let mut slots: Vec<Slot> = (previous.iter())
        .filter(|slot| answered(&slot.address))
        .take(max)
        .copied()
        .collect();
    for &ip in answer {
        if slots.len() >= max {
            break;
        }
        let address = SocketAddr::new(ip, port);
        if slots.iter().any(|slot| slot.address == address) {
            continue;
        }
        let number = (1..).find(|n| slots.iter().all(|slot| slot.number != *n));
        slots.push(Slot {
            number: number.expect("fewer slots than numbers"),
            address,
        });
    }
    slots.sort_by_key(|slot| slot.number);
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(last: &[u8]) -> Vec<IpAddr> {
        last.iter().map(|&n| IpAddr::from([192, 0, 2, n])).collect()
    }

    /// `(number, last octet)` pairs, for short assertions.
    fn numbered(slots: &[Slot]) -> Vec<(u32, u8)> {
        (slots.iter())
            .map(|slot| match slot.address.ip() {
                IpAddr::V4(ip) => (slot.number, ip.octets()[3]),
                IpAddr::V6(_) => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn a_first_answer_is_numbered_in_its_order() {
        let slots = assign(&[], &ips(&[30, 10, 20]), 80, 16);
        assert_eq!(numbered(&slots), [(1, 30), (2, 10), (3, 20)]);
        assert!(slots.iter().all(|slot| slot.address.port() == 80));
    }

    #[test]
    fn addresses_keep_their_numbers_whatever_the_order_of_later_answers() {
        let first = assign(&[], &ips(&[1, 2, 3]), 80, 16);
        assert_eq!(assign(&first, &ips(&[3, 1, 2]), 80, 16), first);
    }

    #[test]
    fn a_new_address_takes_the_lowest_free_number() {
        let first = assign(&[], &ips(&[1, 2, 3]), 80, 16);
        let second = assign(&first, &ips(&[1, 3]), 80, 16);
        assert_eq!(
            numbered(&second),
            [(1, 1), (3, 3)],
            "2 is gone, 3 keeps its number"
        );
        let third = assign(&second, &ips(&[4, 3, 1, 5]), 80, 16);
        assert_eq!(numbered(&third), [(1, 1), (2, 4), (3, 3), (4, 5)]);
    }

    #[test]
    fn an_answer_is_cut_at_max_keeping_the_addresses_already_held() {
        let first = assign(&[], &ips(&[1, 2]), 80, 2);
        assert_eq!(
            numbered(&assign(&first, &ips(&[9, 8, 2, 1]), 80, 2)),
            [(1, 1), (2, 2)]
        );
        assert_eq!(
            numbered(&assign(&[], &ips(&[9, 8, 7]), 80, 2)),
            [(1, 9), (2, 8)]
        );
    }

    #[test]
    fn duplicates_in_an_answer_are_one_server() {
        assert_eq!(
            numbered(&assign(&[], &ips(&[1, 1, 2]), 80, 16)),
            [(1, 1), (2, 2)]
        );
    }

    #[test]
    fn an_empty_answer_empties_the_slots() {
        let first = assign(&[], &ips(&[1]), 80, 16);
        assert!(assign(&first, &[], 80, 16).is_empty());
    }

    #[test]
    fn a_new_port_is_a_new_server() {
        let first = assign(&[], &ips(&[1]), 80, 16);
        let moved = assign(&first, &ips(&[1]), 8080, 16);
        assert_eq!(moved[0].address.port(), 8080);
    }

    #[test]
    fn every_sequence_of_small_answers_keeps_numbers_unique_and_held_addresses_stable() {
        // All answers drawn from four addresses, three answers in a row: 16^3 sequences.
        let subsets: Vec<Vec<IpAddr>> = (0u8..16)
            .map(|mask| {
                ips(&(0..4)
                    .filter(|bit| mask & (1 << bit) != 0)
                    .collect::<Vec<u8>>())
            })
            .collect();
        for a in &subsets {
            for b in &subsets {
                for c in &subsets {
                    let mut slots = Vec::new();
                    for answer in [a, b, c] {
                        let next = assign(&slots, answer, 80, 3);
                        let mut numbers: Vec<u32> = next.iter().map(|slot| slot.number).collect();
                        numbers.dedup();
                        assert_eq!(numbers.len(), next.len(), "unique, sorted numbers");
                        assert!(next.len() <= 3.min(answer.len()));
                        for slot in &slots {
                            if answer.contains(&slot.address.ip()) {
                                assert!(next.contains(slot), "{slot:?} kept its number");
                            }
                        }
                        slots = next;
                    }
                }
            }
        }
    }
}
