//! SVG charts for benchmark reports: plain SVG 1.1, inline attributes only (no scripts, styles,
//! fonts or links). Titles and labels come from untrusted peers: all text is escaped, labels are
//! cut to 40 characters and titles to 100. Non-finite values are skipped, never written.

use std::fmt::Write as _;

/// One line of a line chart: points (x = unix time in milliseconds, y = value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's text for this line.
    pub label: String,
    /// The points, as (unix time in milliseconds, value), in any order.
    pub points: Vec<(f64, f64)>,
}

/// One group of a bar chart: median with a p10–p90 whisker, and the sample count.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The text under the bar.
    pub label: String,
    /// The bar's height.
    pub median: f64,
    /// The whisker's lower end.
    pub p10: f64,
    /// The whisker's upper end.
    pub p90: f64,
    /// The number of samples, shown as "n=COUNT" under the label.
    pub count: usize,
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const MAX_LABEL: usize = 40;
/// Space left of, above and right of the plot area, in pixels (right: half an x label).
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const RIGHT: f64 = 50.0;
/// Candidate x tick steps, in milliseconds: 1 second to 5 years of 365 days.
const TIME_STEPS: [f64; 18] = [
    1e3, 1e4, 6e4, 3e5, 9e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5, 2592e6,
    7776e6, 31536e6, 63072e6, 15768e7,
];
const MIDDLE: &str = r#"text-anchor="middle""#;

/// A line chart of `series` over time (UTC) from y = 0 (or the minimum if negative): one colour
/// per series, circles at the points, a legend. Points with a non-finite coordinate are skipped,
/// "no data" if none is left. `width` and `height` are clamped to 240..=8000 and 160..=8000.
pub fn line_chart(
    title: &str,
    y_label: &str,
    series: &[Series],
    width: u32,
    height: u32,
) -> String {
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let mut lines = Vec::with_capacity(series.len());
    for s in series {
        let mut points: Vec<(f64, f64)> = s.points.iter().copied().filter(finite).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.push(points);
    }
    let xs = bounds(lines.iter().flatten().map(|p| p.0));
    let ys = bounds(lines.iter().flatten().map(|p| p.1));
    let Some(((x_lo, x_hi), y_range)) = xs.zip(ys) else {
        return no_data(title, (width, height));
    };
    let pad = if x_hi > x_lo { 0.0 } else { 18e5 }; // half an hour around a single time
    let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
    let legend_height = 16.0 * lines.len() as f64;
    let mut chart = Chart::open(title, (width, height), 44.0 + legend_height, y_range);
    chart.y_axis(y_label);
    let (w, bottom) = (chart.w, TOP + chart.h);
    let max = (w / 130.0).floor().clamp(1.0, 6.0); // a label is ~100 pixels wide
    let mut x_ticks = ticks(x_lo, x_hi, TIME_STEPS, max + 2.0); // then only those inside:
    x_ticks.retain(|t| (x_lo..=x_hi).contains(t));
    let x = |t: f64| LEFT + w * frac(t, x_lo, x_hi);
    for t in x_ticks {
        chart.path(&format!("M{:.1} {bottom:.1}v4", x(t)), "black");
        chart.text((x(t), bottom + 16.0), MIDDLE, &utc_minute(t));
    }
    for (i, (s, points)) in series.iter().zip(&lines).enumerate() {
        let (colour, label) = (PALETTE[i % PALETTE.len()], label(&s.label, MAX_LABEL));
        let mut d = String::new();
        for &(t, v) in points {
            let (cx, cy, at) = (x(t), chart.y(v), utc_minute(t));
            let _ = write!(d, "{}{cx:.1} {cy:.1}", if d.is_empty() { 'M' } else { 'L' });
            let _ = writeln!(
                chart.out,
                r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="2.5" fill="{colour}"><title>{label}: {v} at {at}</title></circle>"#
            );
        }
        chart.path(&d, colour); // over its circles
        let legend = (LEFT, bottom + 36.0 + 16.0 * i as f64);
        let (fill, text) = (format!(r#"fill="{colour}""#), format!("■ {label}"));
        chart.text(legend, &fill, &text);
    }
    chart.out + "</svg>\n"
}

/// A bar chart: one bar per group at its median with a p10–p90 whisker, its label (cut to fit)
/// and "n=COUNT" under it. Groups with a non-finite median and whiskers with a non-finite end
/// are skipped; with no group left it says "no data". Sizes are clamped as for [`line_chart`].
pub fn bar_chart(title: &str, y_label: &str, bars: &[Bar], width: u32, height: u32) -> String {
    let bars: Vec<&Bar> = bars.iter().filter(|b| b.median.is_finite()).collect();
    let ends = bars.iter().flat_map(|b| [b.median, b.p10, b.p90]);
    let Some(range) = bounds(ends.filter(|v| v.is_finite())) else {
        return no_data(title, (width, height));
    };
    let mut chart = Chart::open(title, (width, height), 44.0, range);
    chart.y_axis(y_label);
    let slot = chart.w / bars.len() as f64;
    let fit = ((slot / 6.5).floor() as usize).clamp(3, MAX_LABEL); // ~6.5 pixels a character
    let (base, bottom, half) = (chart.y(0.0), TOP + chart.h, slot * 0.3);
    for (i, (bar, colour)) in bars.iter().zip(PALETTE.iter().cycle()).enumerate() {
        let (cx, top) = (LEFT + slot * (i as f64 + 0.5), chart.y(bar.median));
        let (corner, size) = ((cx - half, top.min(base)), (2.0 * half, (top - base).abs()));
        chart.rect(corner, size, colour);
        if bar.p10.is_finite() && bar.p90.is_finite() {
            let (y10, y90) = (chart.y(bar.p10), chart.y(bar.p90));
            let (l, c) = (cx - half * 0.4, half * 0.8);
            let d =
                format!("M{cx:.1} {y10:.1}V{y90:.1}M{l:.1} {y10:.1}h{c:.1}M{l:.1} {y90:.1}h{c:.1}");
            chart.path(&d, "black");
        }
        chart.text((cx, bottom + 14.0), MIDDLE, &label(&bar.label, fit));
        chart.text((cx, bottom + 26.0), MIDDLE, &format!("n={}", bar.count));
    }
    chart.out + "</svg>\n"
}

/// Escapes text for SVG/XML (`& < > " '`); control characters XML forbids become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Formats a number compactly for axis labels (e.g. 1.5k, 2.5M, 0.25, 12): suffixes k, M, G, T,
/// at most 2 decimals or 3 significant digits below 1, and "n/a" for a non-finite value.
pub fn compact(v: f64) -> String {
    let v = if v.abs() < 1e-12 { 0.0 } else { v }; // also turns -0 into 0
    let units = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    let unit = units.into_iter().find(|u| v.abs() >= u.0);
    let (scaled, suffix) = unit.map_or((v, ""), |(unit, suffix)| (v / unit, suffix));
    // 2 decimals (1 from 100 on), or 3 significant digits below 1: at most 14 decimals.
    let decimals = match scaled.abs() {
        s if !s.is_finite() => return "n/a".to_owned(),
        s if s >= 100.0 => 1,
        s if s >= 1.0 || s == 0.0 => 2,
        s => (2.0 - s.log10().floor()) as usize,
    };
    let text = format!("{scaled:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

/// A chart being written: its SVG so far, and its plot area (at LEFT, TOP) and y scale.
struct Chart {
    out: String,
    w: f64,
    h: f64,
    ticks: Vec<f64>,
}

impl Chart {
    /// Opens a chart with `bottom` pixels below its plot area and y covering 0 and `range`.
    fn open(title: &str, (width, height): (u32, u32), bottom: f64, range: (f64, f64)) -> Chart {
        let (width, height) = (width.clamp(240, 8000), height.clamp(160, 8000));
        let (title, mid) = (label(title, 100), f64::from(width) / 2.0);
        let out = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">
<title>{title}</title>
<rect width="{width}" height="{height}" fill="white"/>
<text x="{mid:.1}" y="24" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>
"#
        );
        let w = (f64::from(width) - LEFT - RIGHT).max(20.0);
        let h = (f64::from(height) - TOP - bottom).max(20.0);
        let (lo, hi) = (range.0.min(0.0), range.1.max(0.0)); // 4 to 6 ticks 1, 2, 5 × 10^k apart
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let base = 10f64.powf(((hi - lo) / 5.0).log10().floor());
        let ticks = ticks(lo, hi, [1.0, 2.0, 5.0, 10.0, 20.0].map(|m| m * base), 6.0);
        Chart { out, w, h, ticks }
    }

    fn y(&self, v: f64) -> f64 {
        let lo = self.ticks.first().copied().unwrap_or(0.0);
        let hi = self.ticks.last().copied().unwrap_or(1.0);
        TOP + self.h * (1.0 - frac(v, lo, hi))
    }

    /// Draws the grid, the tick labels, the axes and the rotated y label.
    fn y_axis(&mut self, y_label: &str) {
        let (right, bottom, mid) = (LEFT + self.w, TOP + self.h, TOP + self.h / 2.0);
        for t in self.ticks.clone() {
            let y = self.y(t);
            self.path(&format!("M{LEFT} {y:.1}H{right:.1}"), "gainsboro");
            self.text((LEFT - 6.0, y + 4.0), r#"text-anchor="end""#, &compact(t));
        }
        self.path(&format!("M{LEFT} {TOP}V{bottom:.1}H{right:.1}"), "black");
        let rotate = format!(r#"transform="rotate(-90 16 {mid:.1})" {MIDDLE}"#);
        self.text((16.0, mid), &rotate, &label(y_label, MAX_LABEL));
    }

    /// Writes a text element with `body`, escaped already.
    fn text(&mut self, (x, y): (f64, f64), attrs: &str, body: &str) {
        self.out += &format!(r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{body}</text>"#);
        self.out.push('\n');
    }

    fn path(&mut self, d: &str, stroke: &str) {
        let _ = writeln!(self.out, r#"<path d="{d}" stroke="{stroke}" fill="none"/>"#);
    }

    fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), fill: &str) {
        let _ = writeln!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"/>"#
        );
    }
}

fn no_data(title: &str, size: (u32, u32)) -> String {
    let mut chart = Chart::open(title, size, 0.0, (0.0, 0.0));
    let at = ((LEFT + chart.w + RIGHT) / 2.0, TOP + chart.h / 2.0); // the centre
    chart.text(at, r#"text-anchor="middle" fill="dimgray""#, "no data");
    chart.out + "</svg>\n"
}

/// Where `v` sits from `lo` to `hi`, as a finite fraction (0.5 when that is undefined).
fn frac(v: f64, lo: f64, hi: f64) -> f64 {
    let f = (v - lo) / (hi - lo);
    Some(f).filter(|f| f.is_finite()).unwrap_or(0.5)
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |b, v| {
        let (lo, hi) = b.unwrap_or((v, v));
        Some((lo.min(v), hi.max(v)))
    })
}

/// `text` cut to `max` characters (the last being "…"), escaped.
fn label(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return escape(text);
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    escape(&format!("{cut}…"))
}

/// The fewest ticks (at most `max`) a fitting step apart covering `lo..=hi`, else the ends.
fn ticks(lo: f64, hi: f64, steps: impl IntoIterator<Item = f64>, max: f64) -> Vec<f64> {
    let fits = |s: &f64| (hi / s).ceil() - (lo / s).floor() < max;
    let step = steps.into_iter().find(fits).unwrap_or(f64::NAN);
    // Saturating conversions (NaN to 0): at most 8 ticks are taken, and checked below.
    let (first, last) = ((lo / step).floor() as i64, (hi / step).ceil() as i64);
    let ticks: Vec<f64> = (first..=last).take(8).map(|k| k as f64 * step).collect();
    match (ticks.first(), ticks.last()) {
        (Some(&a), Some(&b)) if a <= lo && b >= hi && a < b && b.is_finite() => ticks,
        _ => vec![lo, hi],
    }
}

/// `YYYY-MM-DD HH:MM` in UTC for unix milliseconds (Howard Hinnant's `civil_from_days`).
fn utc_minute(ms: f64) -> String {
    let minutes = (ms / 6e4).floor() as i64; // saturates, far outside any real date
    let z = minutes.div_euclid(1440) + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute) = (minutes.rem_euclid(1440) / 60, minutes.rem_euclid(60));
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_700_000_000_000.0;

    /// Checks that tags close, that nothing unsafe or non-finite leaked, and that `parts` are in.
    fn check(svg: &str, parts: &str) {
        let start = r#"<svg xmlns="http://www.w3.org/2000/svg" "#;
        assert!(svg.starts_with(start) && svg.ends_with("</svg>\n"), "{svg}");
        let (opens, ends) = (svg.matches('<').count(), svg.matches("</").count());
        let closes = ends + svg.matches("/>").count();
        assert_eq!(opens - ends, closes, "unclosed tags: {svg}");
        assert_eq!(opens, svg.matches('>').count(), "raw < or >: {svg}");
        let bad = ["NaN", "inf", "<script", "href", "url("];
        assert!(bad.iter().all(|bad| !svg.contains(bad)), "{svg}");
        let missing = parts.split('|').find(|part| !svg.contains(part));
        assert_eq!(missing, None, "{svg}");
    }

    fn series(label: &str, points: &[(f64, f64)]) -> Series {
        let (label, points) = (label.to_owned(), points.to_vec());
        Series { label, points }
    }

    fn bar(label: &str, median: f64, (p10, p90): (f64, f64), count: usize) -> Bar {
        let label = label.to_owned();
        Bar {
            label,
            median,
            p10,
            p90,
            count,
        }
    }

    #[test]
    fn charts_draw_their_parts() {
        let a = series("kubo", &[(T0 + 72e5, 95.5), (T0, 120.0), (T0 + 36e5, 87.0)]);
        let b = series("helia", &[(T0 + 18e5, 40.0), (T0 + 54e5, 60.0)]);
        let svg = line_chart("fetch time", "ms", &[a, b], 640, 360);
        check(&svg, r#"width="640" height="360" viewBox="0 0 640 360""#);
        check(&svg, ">fetch time<|>ms<|#1f77b4|>■ kubo<|>■ helia<|>150<");
        assert!(svg.contains(">2023-11-14 23:00<") && svg.matches("<circle").count() == 5);
        let small = bar("1 MiB", 12.0, (10.0, 15.0), 20);
        let bars = [small, bar("-", -5.0, (-8.0, -1.0), 3)];
        let svg = bar_chart("by size", "ms", &bars, 500, 300);
        check(&svg, ">n=20<|>n=3<|>1 MiB<|>-10<|>15<|>by size<|>ms<");
        assert_eq!(svg.matches("<rect").count(), 1 + 2);
        let black = svg.matches(r#"stroke="black""#).count();
        assert_eq!(black, 1 + 2, "the axes, then a whisker per bar");
    }

    #[test]
    fn hostile_labels_are_escaped_and_truncated() {
        let (evil, long) = (r#"<script>&"' x"#, "a".repeat(60));
        let lines = [series(evil, &[(T0, 1.0)]), series(&long, &[(T0, 2.0)])];
        let line = line_chart(evil, evil, &lines, 600, 300);
        assert!(line.contains(&format!(" {}…<", "a".repeat(39))) && !line.contains(&long));
        let bars = bar_chart(evil, evil, &[bar(evil, 1.0, (0.5, 2.0), 1)], 600, 300);
        for svg in [line, bars, bar_chart(evil, "", &[], 9, 9)] {
            check(&svg, "&lt;script&gt;&amp;&quot;&#39; x");
        }
        assert_eq!(label(&"é".repeat(40), 40), "é".repeat(40));
        assert_eq!(escape("a\u{0}b\u{1b}\tc"), "a\u{fffd}b\u{fffd}\tc");
    }

    #[test]
    fn ticks_dates_and_numbers_are_round() {
        let y = |lo, hi| Chart::open("", (400, 300), 0.0, (lo, hi)).ticks;
        assert_eq!(y(0.0, 87.0), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(y(-30.0, 250.0), [-100.0, 0.0, 100.0, 200.0, 300.0]);
        for (lo, hi) in [(0.0, 0.0), (0.0, 1.0), (0.0, 51.0), (-7.0, 3e9)] {
            let t = y(lo, hi);
            assert!((4..=6).contains(&t.len()) && t[0] <= lo && t[t.len() - 1] >= hi);
        }
        let hours = ticks(T0, T0 + 4.0 * 36e5, TIME_STEPS, 6.0);
        assert!(hours.len() == 6 && hours.iter().all(|t| t % 36e5 == 0.0));
        assert_eq!(ticks(0.0, 1e14, TIME_STEPS, 6.0), [0.0, 1e14]);
        assert_eq!(utc_minute(0.0), "1970-01-01 00:00");
        assert_eq!(utc_minute(T0), "2023-11-14 22:13");
        assert_eq!(utc_minute(951_782_400_000.0), "2000-02-29 00:00");
        let cases = "1500=1.5k 2500000=2.5M 0.25=0.25 12=12 0=0 -3e9=-3G 1234.5=1.23k 1e15=1000T";
        let cases = format!("{cases} 0.00125=0.00125 -0=0 0.30000000000000004=0.3 NaN=n/a");
        for (v, s) in cases.split(' ').filter_map(|case| case.split_once('=')) {
            assert_eq!(compact(v.parse().unwrap()), s, "{v}");
        }
    }

    #[test]
    fn non_finite_values_are_skipped_and_no_data_is_said() {
        let (nan, inf, m) = (f64::NAN, f64::INFINITY, f64::MAX);
        let points = [(T0, nan), (nan, 3.0), (T0, inf), (-m, -m), (m, m)];
        let svg = line_chart("t", "y", &[series("x", &points)], 400, 300);
        check(&svg, r#"<circle cx="70.0""#);
        assert_eq!(svg.matches("<circle").count(), 2);
        let ok = bar("ok", 3.0, (nan, 4.0), 2);
        let gone = bar("gone", nan, (1.0, 2.0), 1);
        let bars = bar_chart("t", "y", &[ok, gone.clone()], 400, 300);
        check(&bars, ">ok<");
        assert!(!bars.contains(">gone<") && bars.matches("=\"black\"").count() == 1);
        let only_nan = line_chart("t", "y", &[series("nan", &[(nan, 1.0)])], 1, 1);
        let empty = line_chart("t", "y", &[], 400, 300);
        for svg in [empty, only_nan, bar_chart("", "", &[gone], 0, 0)] {
            check(&svg, ">no data<");
        }
    }
}
