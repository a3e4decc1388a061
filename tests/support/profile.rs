//! The built-in profile as the tests run it: every duration upgrade-guard waits divided by
//! one factor, nothing else changed.

use upgrade_guard::config::DEFAULT_PROFILE;
use upgrade_guard::units::parse_duration;

/// Keys whose durations are not waits of upgrade-guard: `rollback_timeout` is the
/// `--timeout` handed to `helm rollback` in the recommended command.
const NOT_SCALED: [&str; 1] = ["rollback_timeout"];

/// The built-in profile with its durations divided by `factor`.
pub fn scaled(factor: u32) -> String {
    fn walk(v: &mut serde_yaml_ng::Value, key: Option<&str>, factor: u32) {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                for (k, v) in m.iter_mut() {
                    walk(v, k.as_str(), factor);
                }
            }
            serde_yaml_ng::Value::Sequence(s) => {
                s.iter_mut().for_each(|v| walk(v, None, factor));
            }
            serde_yaml_ng::Value::String(s) if key.is_none_or(|k| !NOT_SCALED.contains(&k)) => {
                if let Ok(d) = parse_duration(s) {
                    *s = format!("{}ms", (d / factor).as_millis());
                }
            }
            _ => {}
        }
    }
    let mut profile: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(DEFAULT_PROFILE).expect("the built-in profile is YAML");
    walk(&mut profile, None, factor);
    serde_yaml_ng::to_string(&profile).expect("YAML")
}
