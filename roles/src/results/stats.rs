//! Statistics for benchmark results: the spread of a sample (median, p10, p90, extremes) and
//! the verdict on a new value against the history of earlier values of the same kind.
//!
//! Quantiles use linear interpolation between closest ranks, the same definition as DuckDB's
//! `quantile_cont` and numpy's default, so figures computed here match those of SQL reports.
//! Non-finite values (NaN, ±infinity) are ignored everywhere.

/// Spread of a sample: its size, median, 10th and 90th percentiles and extremes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Number of finite values in the sample.
    pub count: usize,
    /// The median (50th percentile).
    pub median: f64,
    /// The 10th percentile.
    pub p10: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

/// Computes the spread of `values`, with quantiles by linear interpolation between closest
/// ranks (the same as DuckDB's `quantile_cont`). NaN and infinite values are ignored; `None`
/// when no value is finite.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    Some(Spread {
        count: sorted.len(),
        median: quantile(&sorted, 0.5),
        p10: quantile(&sorted, 0.1),
        p90: quantile(&sorted, 0.9),
        min,
        max,
    })
}

/// The `q` quantile (`q` in 0..=1, clamped) of `sorted`, which must be sorted ascending and
/// hold finite values, by linear interpolation between closest ranks. Returns NaN for an
/// empty slice or a NaN `q`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    if q.is_nan() {
        return f64::NAN;
    }
    // Ranks are far below 2^52, so the conversions are exact.
    let rank = q.clamp(0.0, 1.0) * last as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(last);
    let (a, b) = (sorted[lo], sorted[hi]);
    a + (rank - lo as f64) * (b - a)
}

/// Which direction is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Smaller is better (durations, latencies).
    Lower,
    /// Larger is better (throughput, rates).
    Higher,
}

/// The verdict on one new value against its history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The spread of the history the value was judged against.
    pub history: Spread,
    /// The value judged.
    pub value: f64,
    /// How much worse than the history's median, in percent (negative = better). Relative to
    /// the median's magnitude; for a median of 0 it is 0 when the value is 0 too, else +100
    /// (worse) or -100 (better).
    pub worse_pct: f64,
    /// Whether the value is a regression: see [`judge`].
    pub regressed: bool,
}

/// Judges `value` against `history` (earlier values of the same kind, parameters and
/// hardware). `None` if the history has fewer than `min_history` finite values (or none at
/// all), or if `value` is not finite.
///
/// The value is regressed iff it is worse than the history's median by more than
/// `threshold_pct` percent AND outside the history's spread on the worse side: above p90
/// when lower is better, below p10 when higher is better. Requiring both keeps a noisy
/// history from flagging every run, and a tight history from flagging tiny changes.
pub fn judge(
    history: &[f64],
    value: f64,
    better: Better,
    threshold_pct: f64,
    min_history: usize,
) -> Option<Verdict> {
    if !value.is_finite() {
        return None;
    }
    let history = spread(history)?;
    if history.count < min_history {
        return None;
    }
    // Positive when the value is worse than the median, in the median's units.
    let worse_by = match better {
        Better::Lower => value - history.median,
        Better::Higher => history.median - value,
    };
    let worse_pct = if history.median == 0.0 {
        if worse_by == 0.0 {
            0.0
        } else {
            100.0_f64.copysign(worse_by)
        }
    } else {
        worse_by / history.median.abs() * 100.0
    };
    let outside = match better {
        Better::Lower => value > history.p90,
        Better::Higher => value < history.p10,
    };
    Some(Verdict {
        history,
        value,
        worse_pct,
        regressed: worse_pct > threshold_pct && outside,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// 20 values of `base` ± 3%, from a fixed linear congruential generator.
    fn noisy(base: f64) -> Vec<f64> {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        (0..20)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64; // in [0, 1)
                base * (1.0 + 0.03 * (2.0 * unit - 1.0))
            })
            .collect()
    }

    #[test]
    fn quantiles_match_hand_computed_values() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = spread(&values).unwrap();
        assert_eq!(s.count, 10);
        assert!(close(s.median, 5.5), "{s:?}");
        assert!(close(s.p10, 1.9), "{s:?}");
        assert!(close(s.p90, 9.1), "{s:?}");
        assert_eq!((s.min, s.max), (1.0, 10.0));
        // Order does not matter; odd sizes hit a rank exactly.
        let s = spread(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!(close(s.median, 3.0) && close(s.p10, 1.4) && close(s.p90, 4.6));
        assert!(close(quantile(&[2.0, 4.0], 0.25), 2.5));
        assert!(close(quantile(&[7.0], 0.9), 7.0));
        assert!(close(quantile(&[1.0, 2.0], 1.0), 2.0));
        assert!(close(quantile(&[1.0, 2.0], 7.0), 2.0), "q is clamped");
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn nan_and_infinities_are_ignored() {
        let s = spread(&[f64::NAN, 1.0, f64::INFINITY, 3.0, f64::NEG_INFINITY]).unwrap();
        assert_eq!(s.count, 2);
        assert!(close(s.median, 2.0) && s.min == 1.0 && s.max == 3.0);
        assert_eq!(spread(&[f64::NAN, f64::INFINITY]), None);
        assert_eq!(spread(&[]), None);
        let mut history = noisy(100.0);
        history.extend([f64::NAN; 5]);
        let v = judge(&history, 130.0, Better::Lower, 10.0, 20).unwrap();
        assert_eq!(v.history.count, 20);
        assert!(v.regressed);
        assert_eq!(judge(&history, f64::NAN, Better::Lower, 10.0, 5), None);
    }

    #[test]
    fn injected_slowdown_is_flagged() {
        let history = noisy(100.0);
        assert!(history.iter().all(|v| (97.0..=103.0).contains(v)));
        let v = judge(&history, 130.0, Better::Lower, 10.0, 5).unwrap();
        assert!(v.regressed, "{v:?}");
        assert!(v.worse_pct > 25.0 && v.worse_pct < 35.0, "{v:?}");
        assert_eq!(v.value, 130.0);
    }

    #[test]
    fn noise_and_improvements_are_not_flagged() {
        let history = noisy(100.0);
        let within = judge(&history, 103.0, Better::Lower, 10.0, 5).unwrap();
        assert!(!within.regressed, "{within:?}");
        let faster = judge(&history, 70.0, Better::Lower, 10.0, 5).unwrap();
        assert!(!faster.regressed, "{faster:?}");
        assert!(faster.worse_pct < -25.0, "{faster:?}");
        let more = judge(&history, 130.0, Better::Higher, 10.0, 5).unwrap();
        assert!(!more.regressed && more.worse_pct < 0.0, "{more:?}");
    }

    #[test]
    fn throughput_drop_is_flagged_when_higher_is_better() {
        let history = noisy(500.0);
        let v = judge(&history, 350.0, Better::Higher, 10.0, 5).unwrap();
        assert!(v.regressed, "{v:?}");
        assert!(close(
            v.worse_pct,
            (v.history.median - 350.0) / v.history.median * 100.0
        ));
        assert!(
            !judge(&history, 495.0, Better::Higher, 10.0, 5)
                .unwrap()
                .regressed
        );
    }

    #[test]
    fn threshold_and_spread_are_both_required() {
        // Outside the spread but within the threshold: not flagged.
        let tight = [100.0; 10];
        let v = judge(&tight, 105.0, Better::Lower, 10.0, 5).unwrap();
        assert!(!v.regressed && close(v.worse_pct, 5.0));
        // Past the threshold but inside a wide spread: not flagged.
        let wide: Vec<f64> = (0..10).map(|i| if i < 8 { 100.0 } else { 200.0 }).collect();
        let v = judge(&wide, 150.0, Better::Lower, 10.0, 5).unwrap();
        assert!(!v.regressed && v.history.p90 > 150.0, "{v:?}");
    }

    #[test]
    fn short_history_gives_none() {
        let history = noisy(100.0);
        assert_eq!(judge(&history[..4], 130.0, Better::Lower, 10.0, 5), None);
        assert!(judge(&history[..5], 130.0, Better::Lower, 10.0, 5).is_some());
        assert_eq!(judge(&[], 1.0, Better::Lower, 10.0, 0), None);
        let nan_padded = [f64::NAN, f64::NAN, 1.0, 2.0];
        assert_eq!(judge(&nan_padded, 1.0, Better::Lower, 10.0, 3), None);
    }

    #[test]
    fn zero_median_has_bounded_percentages() {
        let zeros = [0.0; 6];
        let same = judge(&zeros, 0.0, Better::Lower, 10.0, 3).unwrap();
        assert_eq!((same.worse_pct, same.regressed), (0.0, false));
        let worse = judge(&zeros, 2.0, Better::Lower, 10.0, 3).unwrap();
        assert_eq!((worse.worse_pct, worse.regressed), (100.0, true));
        let better = judge(&zeros, 2.0, Better::Higher, 10.0, 3).unwrap();
        assert_eq!((better.worse_pct, better.regressed), (-100.0, false));
        // A negative median is judged by magnitude: -110 vs -100 is 10% worse when higher is better.
        let negative = judge(&[-100.0; 5], -110.0, Better::Higher, 5.0, 3).unwrap();
        assert!(close(negative.worse_pct, 10.0) && negative.regressed);
    }
}
