//! The fixed environment every builder gets. Nothing is inherited from the caller.

/// `SOURCE_DATE_EPOCH` given to every builder, so tools that embed a date embed this one.
pub const SOURCE_DATE_EPOCH: &str = "1";
/// A home directory that does not exist, so nothing reads user configuration.
pub const HOME: &str = "/homeless-shelter";
/// The search path inside the sandbox. Builders are started by absolute path anyway.
pub const PATH: &str = "/usr/bin:/bin";

/// The fixed variables, with `TMPDIR` under the builder-visible build directory.
pub(crate) fn fixed(build_dir_seen: &str) -> Vec<(String, String)> {
    vec![
        ("HOME".into(), HOME.into()),
        ("LC_ALL".into(), "C".into()),
        ("PATH".into(), PATH.into()),
        ("SOURCE_DATE_EPOCH".into(), SOURCE_DATE_EPOCH.into()),
        ("TMPDIR".into(), format!("{build_dir_seen}/.tmp")),
        ("TZ".into(), "UTC".into()),
    ]
}

/// The fixed variables followed by the action's own (which win on conflict).
pub(crate) fn for_action(
    build_dir_seen: &str,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env = fixed(build_dir_seen);
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_variables_override_fixed_ones() {
        let env = for_action("/build", &[("TZ".into(), "Europe/Paris".into())]);
        let tz: Vec<_> = env.iter().filter(|(k, _)| k == "TZ").collect();
        assert_eq!(tz, vec![&("TZ".to_string(), "Europe/Paris".to_string())]);
        assert!(env.contains(&("TMPDIR".into(), "/build/.tmp".into())));
    }
}
