//! What a pin may ask, checked the same way wherever the request comes from (the API, the
//! CLI before it calls, the configuration's defaults): replication factors read as IPFS
//! Cluster reads them, an expiry within [`MAX_EXPIRY`], and bounded names, tags, metadata
//! and allocations.

use std::collections::BTreeMap;
use std::time::Duration;

/// The most metadata entries a pin may carry.
pub const MAX_METADATA: usize = 32;
/// The longest name, metadata key or value. Bytes.
pub const MAX_TEXT: usize = 256;
/// The most peers a pin may be allocated to.
pub const MAX_ALLOCATIONS: usize = 64;
/// The furthest expiry: 100 years (of 365.25 days).
pub const MAX_EXPIRY: Duration = Duration::from_secs(36_525 * 86_400);
/// The nearest expiry, as IPFS Cluster has it.
pub const MIN_EXPIRY: Duration = Duration::from_secs(1);

/// A replication factor as a request gives it, read as IPFS Cluster reads
/// `replication-min` and `replication-max`: `-1` is every eligible peer (`Some(None)`), `0`
/// the configured default (`None`), `n > 0` is `n`; anything else is refused.
pub fn factor(value: i64) -> Result<Option<Option<u32>>, String> {
    match value {
        -1 => Ok(Some(None)),
        0 => Ok(None),
        n if n > 0 && n <= i64::from(i32::MAX) => Ok(Some(Some(n as u32))),
        n => Err(format!(
            "{n} is not a replication factor: -1 (everywhere), 0 (the default) or 1 to {}",
            i32::MAX
        )),
    }
}

/// Checks the least and the most copies once defaults are applied (`None`: everywhere), by
/// IPFS Cluster's rules: "everywhere" for both or for neither, and the least not above the
/// most.
pub fn check_factors(min: Option<u32>, max: Option<u32>) -> Result<(), String> {
    match (min, max) {
        (None, None) => Ok(()),
        (Some(min), Some(max)) if min > max => Err(format!(
            "replication-min {min} is above replication-max {max}"
        )),
        (Some(_), Some(_)) => Ok(()),
        (None, Some(max)) => Err(format!(
            "replication-min is -1 (everywhere) but replication-max is {max}: both must be -1 when one is"
        )),
        (Some(min), None) => Err(format!(
            "replication-max is -1 (everywhere) but replication-min is {min}: both must be -1 when one is"
        )),
    }
}

/// When a pin that is to expire `after` from `now_ms` expires (Unix milliseconds); refused
/// under [`MIN_EXPIRY`] or past [`MAX_EXPIRY`].
pub fn expiry(now_ms: u64, after: Duration) -> Result<u64, String> {
    if after < MIN_EXPIRY {
        return Err("expire-in must be at least 1s".into());
    }
    if after > MAX_EXPIRY {
        return Err(format!(
            "expire-in of {}s is past the limit of 100 years ({}s)",
            after.as_secs(),
            MAX_EXPIRY.as_secs()
        ));
    }
    // Within 100 years, in milliseconds, this fits in a u64 many times over.
    Ok(now_ms.saturating_add(after.as_millis() as u64))
}

/// Checks an expiry given as a time (Unix milliseconds): after `now_ms`, and no further than
/// [`MAX_EXPIRY`] from it.
pub fn check_expiry(now_ms: u64, expire_at_ms: u64) -> Result<(), String> {
    let after = expire_at_ms.saturating_sub(now_ms);
    expiry(now_ms, Duration::from_millis(after)).map(|_| ())
}

/// Checks a pin's labels: a name of at most [`MAX_TEXT`] bytes, tags as
/// [`crate::settings::check_tags`] has them, at most [`MAX_METADATA`] metadata entries (keys
/// 1 to [`MAX_TEXT`] bytes, values up to [`MAX_TEXT`]) and at most [`MAX_ALLOCATIONS`] named
/// peers.
pub fn check_labels(
    name: &str,
    tags: &[String],
    metadata: &BTreeMap<String, String>,
    allocations: usize,
) -> Result<(), String> {
    if name.len() > MAX_TEXT {
        return Err(format!(
            "name of {} bytes is longer than {MAX_TEXT} bytes",
            name.len()
        ));
    }
    crate::tags::check_tags(tags)?;
    if metadata.len() > MAX_METADATA
        || metadata
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > MAX_TEXT || v.len() > MAX_TEXT)
    {
        return Err(format!(
            "at most {MAX_METADATA} metadata entries, keys 1 to {MAX_TEXT} bytes, values up to {MAX_TEXT}"
        ));
    }
    if allocations > MAX_ALLOCATIONS {
        return Err(format!("at most {MAX_ALLOCATIONS} allocations"));
    }
    Ok(())
}

/// Metadata given as `key=value` entries.
pub fn metadata<'a>(
    entries: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for m in entries {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| format!("metadata {:?} is not key=value", clip(m)))?;
        out.insert(k.to_string(), v.to_string());
        if out.len() > MAX_METADATA {
            return Err(format!("at most {MAX_METADATA} metadata entries"));
        }
    }
    Ok(out)
}

/// A duration like `90s`, `15m`, `2h` or `7d` (seconds without a unit).
pub fn duration(text: &str) -> Result<Duration, String> {
    let shown = clip(text);
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let too_long = || format!("{shown:?} is past the limit of 100 years");
    let n: u64 = match digits.parse() {
        Ok(n) => n,
        // Digits only, and more than a u64 holds.
        Err(_) if !digits.is_empty() => return Err(too_long()),
        Err(_) => {
            return Err(format!(
                "{shown:?} is not a duration like 90s, 15m, 2h or 7d"
            ))
        }
    };
    let secs = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{shown:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(too_long)
}

/// At most 64 characters of `text`, for an error message.
fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn factors_read_as_ipfs_cluster_reads_them() {
        assert_eq!(factor(-1), Ok(Some(None)));
        assert_eq!(factor(0), Ok(None));
        assert_eq!(factor(3), Ok(Some(Some(3))));
        assert!(factor(-2).is_err());
        assert!(factor(i64::from(i32::MAX) + 1).is_err());

        assert!(check_factors(None, None).is_ok());
        assert!(check_factors(Some(2), Some(3)).is_ok());
        assert!(check_factors(Some(3), Some(3)).is_ok());
        let above = check_factors(Some(4), Some(3)).unwrap_err();
        assert!(above.contains("above"), "{above}");
        // "Everywhere" for one of them only: IPFS Cluster refuses both ways round.
        let one = check_factors(None, Some(1)).unwrap_err();
        assert!(one.contains("both must be -1"), "{one}");
        assert!(check_factors(Some(3), None).is_err());
    }

    #[test]
    fn an_expiry_is_at_least_a_second_and_at_most_a_hundred_years_away() {
        let day = Duration::from_secs(86_400);
        assert_eq!(expiry(NOW, Duration::from_secs(90)), Ok(NOW + 90_000));
        assert_eq!(
            expiry(NOW, 36_525 * day),
            Ok(NOW + 36_525 * 86_400_000),
            "exactly 100 years"
        );
        let past = expiry(NOW, 36_526 * day).unwrap_err();
        assert!(past.contains("100 years"), "{past}");
        // What overflowed before: u64::MAX seconds, and the ~585 million years that fill a
        // u64 of milliseconds.
        assert!(expiry(NOW, Duration::from_secs(u64::MAX)).is_err());
        assert!(expiry(NOW, Duration::from_millis(u64::MAX)).is_err());
        assert!(expiry(NOW, Duration::ZERO).is_err());
        assert!(check_expiry(NOW, NOW + 1_000).is_ok());
        assert!(check_expiry(NOW, NOW).is_err(), "already expired");
        assert!(check_expiry(NOW, u64::MAX).is_err());
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(duration("30"), Ok(Duration::from_secs(30)));
        assert!(duration("1w").is_err());
        assert!(duration("h").is_err());
        assert!(duration("-5s").is_err());
        let huge = duration("99999999999999999999d").unwrap_err();
        assert!(huge.contains("100 years"), "{huge}");
        let long = duration(&"9".repeat(100_000)).unwrap_err();
        assert!(
            long.len() < 200,
            "the error does not echo the input: {long}"
        );
    }

    #[test]
    fn labels_are_bounded() {
        let none = BTreeMap::new();
        assert!(check_labels("dataset", &["zone:a".into()], &none, 3).is_ok());
        let name = check_labels(&"n".repeat(MAX_TEXT + 1), &[], &none, 0).unwrap_err();
        assert!(name.contains("name"), "{name}");
        let tags: Vec<String> = (0..17).map(|i| format!("k:{i}")).collect();
        assert!(check_labels("", &tags, &none, 0).is_err());
        assert!(check_labels("", &[format!("k:{}", "v".repeat(64))], &none, 0).is_err());
        assert!(check_labels("", &["novalue".into()], &none, 0).is_err());
        let many: BTreeMap<String, String> = (0..33).map(|i| (i.to_string(), "v".into())).collect();
        assert!(check_labels("", &[], &many, 0).is_err());
        assert!(check_labels("", &[], &none, MAX_ALLOCATIONS + 1).is_err());

        assert_eq!(
            metadata(["owner=lab", "k=a=b"]).unwrap(),
            BTreeMap::from([
                ("owner".to_string(), "lab".to_string()),
                ("k".to_string(), "a=b".to_string())
            ])
        );
        assert!(metadata(["novalue"]).is_err());
        let entries: Vec<String> = (0..40).map(|i| format!("{i}=v")).collect();
        assert!(metadata(entries.iter().map(String::as_str)).is_err());
    }
}
