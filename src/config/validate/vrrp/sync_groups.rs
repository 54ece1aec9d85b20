//! `vrrp.sync_groups`: instances that change state together (keepalived's `vrrp_sync_group`).
//! Each member must be a defined instance, in one group only; members may not track with
//! weights, since a group is reliable only while its members' priorities agree.

use super::super::super::model::*;
use super::super::super::schema::*;
use super::super::Validator;
use std::collections::HashMap;

impl Validator {
    /// Checks `groups` and records each member's group on its instance. `skipped` are the
    /// names of instances left out for a structural error (reported on their own).
    pub(super) fn sync_groups(
        &mut self,
        groups: Vec<SyncGroupSpec>,
        instances: &mut [VrrpInstance],
        skipped: &[String],
    ) {
        let names = groups.iter().map(|group| &group.name).enumerate();
        self.unique_names("vrrp.sync_groups", "sync group", names);
        // Instance name → the group that took it first.
        let mut taken: HashMap<String, usize> = HashMap::new();
        for (index, group) in groups.iter().enumerate() {
            let at = format!("vrrp.sync_groups[{index}]");
            self.non_empty(format!("{at}.name"), &group.name);
            if group.instances.len() < 2 {
                self.error(
                    format!("{at}.instances"),
                    "a sync group needs at least two instances: it makes its members change \
                     state together",
                );
            }
            for (position, member) in group.instances.iter().enumerate() {
                let field = format!("{at}.instances[{position}]");
                if group.instances[..position].contains(member) {
                    self.error(field, format!("instance {member:?} is listed twice"));
                    continue;
                }
                let Some(instance) = instances.iter_mut().find(|i| &i.name == member) else {
                    if !skipped.contains(member) {
                        let known: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
                        self.error(
                            field,
                            format!(
                                "unknown instance {member:?}; defined instances: {}",
                                if known.is_empty() {
                                    "none".to_owned()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        );
                    }
                    continue;
                };
                if let Some(&first) = taken.get(member) {
                    self.error(
                        field,
                        format!(
                            "instance {member:?} is already in sync group {:?} \
                             (vrrp.sync_groups[{first}]); an instance belongs to one group at \
                             most",
                            groups[first].name
                        ),
                    );
                    continue;
                }
                if instance
                    .track
                    .iter()
                    .any(|track| matches!(track.weight, TrackWeight::Points(_)))
                {
                    self.error(
                        field,
                        format!(
                            "instance {member:?} tracks items with a weight, which would let \
                             members' priorities disagree and the group flap between nodes \
                             (keepalived zeroes such weights); in a sync group, track without \
                             a weight (Fault while failing)"
                        ),
                    );
                }
                taken.insert(member.clone(), index);
                instance.sync_group = Some(SyncGroup {
                    name: group.name.clone(),
                    instances: group.instances.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::test_support::*;

    fn two_instances(groups: &str) -> String {
        vrrp(&[
            "name: A, interface: eth0, virtual_router_id: 1, virtual_ips: [198.51.100.10/24]",
            "name: B, interface: eth1, virtual_router_id: 2, virtual_ips: [198.51.100.11/24]",
            "name: C, interface: eth1, virtual_router_id: 3, virtual_ips: [198.51.100.12/24], \
             track: [{ interface: eth0, weight: -20 }]",
        ]) + "  sync_groups:\n"
            + groups
    }

    #[test]
    fn records_each_members_group() {
        let config = valid(&two_instances("    - { name: g, instances: [A, B] }\n"));
        let group = SyncGroup {
            name: "g".into(),
            instances: vec!["A".into(), "B".into()],
        };
        assert_eq!(config.vrrp[0].sync_group, Some(group.clone()));
        assert_eq!(config.vrrp[1].sync_group, Some(group));
        assert_eq!(config.vrrp[2].sync_group, None);
    }

    #[test]
    fn rejects_unknown_repeated_and_shared_members() {
        assert_eq!(
            problems(&two_instances(
                "    - { name: g, instances: [A, X, A] }\n    - { name: h, instances: [B, A] }\n"
            )),
            [
                "vrrp.sync_groups[0].instances[1]: unknown instance \"X\"; defined instances: \
                 A, B, C",
                "vrrp.sync_groups[0].instances[2]: instance \"A\" is listed twice",
                "vrrp.sync_groups[1].instances[1]: instance \"A\" is already in sync group \"g\" \
                 (vrrp.sync_groups[0]); an instance belongs to one group at most",
            ]
        );
    }

    #[test]
    fn rejects_small_unnamed_and_duplicate_groups() {
        assert_eq!(
            problems(&two_instances(
                "    - { name: g, instances: [A] }\n    - { name: g, instances: [] }\n    - { name: '', instances: [B] }\n"
            )),
            [
                "vrrp.sync_groups[1].name: duplicate sync group name \"g\"; \
                 vrrp.sync_groups[0] already uses it",
                "vrrp.sync_groups[0].instances: a sync group needs at least two instances: it \
                 makes its members change state together",
                "vrrp.sync_groups[1].instances: a sync group needs at least two instances: it \
                 makes its members change state together",
                "vrrp.sync_groups[2].name: must not be empty",
                "vrrp.sync_groups[2].instances: a sync group needs at least two instances: it \
                 makes its members change state together",
            ]
        );
    }

    #[test]
    fn rejects_a_member_that_tracks_with_a_weight() {
        let problems = problems(&two_instances("    - { name: g, instances: [A, C] }\n"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "vrrp.sync_groups[0].instances[1]: instance \"C\" tracks items with a weight"
            ),
            "{problems:?}"
        );
    }
}
