//! The two exposition formats a scrape may get, and which one it asked for.
//!
//! `prometheus-client` writes OpenMetrics 1.0 only. Prometheus' older text format, 0.0.4, is
//! what Kubo serves and what most tools read (`promtool check metrics` reads nothing else), so
//! a scrape gets it unless its `Accept` header asks for OpenMetrics first. The 0.0.4 text is
//! made from the OpenMetrics text the registry writes, family by family:
//!
//! - `# HELP` and `# TYPE` name the family as its samples are named: a counter `x` is
//!   exposed as `x_total` (its samples' name) with `# TYPE x_total counter`; an info metric
//!   `x` as the gauge `x_info`; `unknown` becomes `untyped`.
//! - `# UNIT`, `# EOF`, `_created` samples and exemplars are OpenMetrics only: left out.
//! - Help text is escaped as 0.0.4 wants (`\\` and `\n`; `prometheus-client` writes it
//!   raw); label values are escaped alike in both formats and pass through unchanged.
//! - A timestamp (seconds in OpenMetrics) becomes milliseconds.
//!
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/>.

use std::fmt::Write;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format a scrape's `Accept` header asks for: OpenMetrics when it ranks
    /// `application/openmetrics-text` above (or alone besides) `text/plain`, the 0.0.4 text
    /// format otherwise, as Prometheus' own handlers negotiate.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let mut best: Option<(f32, Self)> = None;
        for range in accept.split(',') {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let (mut q, mut version) = (1.0f32, None);
            for p in params {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().trim_matches('"').to_string()),
                    _ => {}
                }
            }
            let format = match (media.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => {
                    Self::OpenMetrics
                }
                ("text/plain", None | Some("0.0.4")) => Self::Text,
                _ => continue,
            };
            // The first of equal ranks wins, as the header lists them.
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, format));
            }
        }
        best.map_or(Self::Text, |(_, f)| f)
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// One family being rewritten.
#[derive(Debug, Default)]
struct Family {
    name: String,
    help: String,
    kind: String,
}

impl Family {
    /// The family's name and type in the 0.0.4 format.
    fn exposed(&self) -> (String, &'static str) {
        match self.kind.as_str() {
            "counter" => (format!("{}_total", self.name), "counter"),
            "info" => (format!("{}_info", self.name), "gauge"),
            "gauge" => (self.name.clone(), "gauge"),
            "histogram" => (self.name.clone(), "histogram"),
            "summary" => (self.name.clone(), "summary"),
            _ => (self.name.clone(), "untyped"),
        }
    }

    /// Whether a sample of this name belongs in the 0.0.4 rendering of the family.
    fn keeps(&self, sample: &str) -> bool {
        let (exposed, kind) = self.exposed();
        match kind {
            "histogram" | "summary" => sample
                .strip_prefix(self.name.as_str())
                .is_some_and(|rest| matches!(rest, "" | "_bucket" | "_sum" | "_count")),
            _ => sample == exposed,
        }
    }
}

/// The 0.0.4 text rendering of `openmetrics`, the text a `prometheus-client` registry writes.
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut family = Family::default();
    let mut described = false;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            family = Family {
                name: name.to_string(),
                help: help.to_string(),
                kind: String::new(),
            };
            described = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            if name != family.name {
                family = Family {
                    name: name.to_string(),
                    ..Family::default()
                };
            }
            family.kind = kind.trim().to_string();
            let (exposed, kind) = family.exposed();
            let _ = writeln!(out, "# HELP {exposed} {}", escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {exposed} {kind}");
            described = true;
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            // `# UNIT`, `# EOF`, and anything else of OpenMetrics' own.
            continue;
        }
        let Some(sample) = Sample::parse(line) else {
            tracing::debug!(line, "metrics: sample not understood, left out");
            continue;
        };
        if !described || !family.keeps(sample.name) {
            continue;
        }
        out.push_str(sample.name);
        out.push_str(sample.labels);
        out.push(' ');
        out.push_str(sample.value);
        if let Some(ms) = sample.timestamp_ms() {
            let _ = write!(out, " {ms}");
        }
        out.push('\n');
    }
    out
}

/// Help text escaped for the 0.0.4 format.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample line's parts; the exemplar, if any, is dropped.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    /// `{...}` as written, or empty.
    labels: &'a str,
    value: &'a str,
    timestamp: Option<&'a str>,
}

impl<'a> Sample<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let name_end = line.find(['{', ' '])?;
        let name = &line[..name_end];
        if name.is_empty() {
            return None;
        }
        let mut rest = &line[name_end..];
        let mut labels = "";
        if rest.starts_with('{') {
            let end = labels_end(rest)?;
            labels = &rest[..end];
            rest = &rest[end..];
        }
        let mut tokens = rest.strip_prefix(' ')?.split(' ');
        let value = tokens.next().filter(|v| !v.is_empty())?;
        let timestamp = tokens.next().filter(|t| *t != "#");
        Some(Self {
            name,
            labels,
            value,
            timestamp,
        })
    }

    /// The timestamp in milliseconds, as 0.0.4 writes it.
    fn timestamp_ms(&self) -> Option<i64> {
        let seconds: f64 = self.timestamp?.parse().ok()?;
        Some((seconds * 1000.0).round() as i64)
    }
}

/// The length of the `{...}` block at the start of `s`, quotes and escapes respected.
fn labels_end(s: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::exemplar::CounterWithExemplar;
    use prometheus_client::metrics::family::Family as Labelled;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::metrics::info::Info;
    use prometheus_client::registry::{Registry, Unit};

    #[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Path {
        path: String,
    }

    #[test]
    fn negotiation_follows_the_accept_header() {
        use Format::{OpenMetrics as Om, Text};
        for (accept, want) in [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("text/plain; version=0.0.4"), Text),
            (Some("application/openmetrics-text"), Om),
            (Some("application/openmetrics-text; version=1.0.0"), Om),
            // What Prometheus 2 sends when it may take OpenMetrics.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Om,
            ),
            // ... and when it may not.
            (Some("text/plain;version=0.0.4;q=1,*/*;q=0.1"), Text),
            (
                Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
                Text,
            ),
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("application/openmetrics-text; version=2.0.0"), Text),
            (Some("Application/OpenMetrics-Text"), Om),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn each_kind_is_rendered_as_0_0_4_names_it() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        counter.inc_by(3);
        registry.register("requests", "Requests \"served\" \\ counted", counter);
        let seconds = Counter::<f64>::default();
        seconds.inc_by(1.5);
        registry.register_with_unit("busy", "Busy time", Unit::Seconds, seconds);
        let gauge = Gauge::<i64>::default();
        gauge.set(-2);
        registry.register("depth", "Queue depth", gauge);
        let by_path = Labelled::<Path, Counter>::default();
        by_path
            .get_or_create(&Path {
                path: "a\"b\\c\nd".into(),
            })
            .inc();
        registry.register("hits", "Hits by path", by_path);
        let histogram = Histogram::new([0.5, 1.0]);
        histogram.observe(0.7);
        registry.register("latency", "Latency", histogram);
        registry.register(
            "build",
            "Build facts",
            Info::new(vec![("version".to_string(), "1".to_string())]),
        );
        let with_exemplar = CounterWithExemplar::<Path>::default();
        with_exemplar.inc_by(2, Some(Path { path: "/x".into() }), None);
        registry.register("traced", "Traced", with_exemplar);
        let mut om = String::new();
        encode(&mut om, &registry).unwrap();
        assert!(om.contains("# {path=\"/x\"}"), "{om}");
        assert_eq!(
            to_text_004(&om),
            "# HELP requests_total Requests \"served\" \\\\ counted.\n\
             # TYPE requests_total counter\n\
             requests_total 3\n\
             # HELP busy_seconds_total Busy time.\n\
             # TYPE busy_seconds_total counter\n\
             busy_seconds_total 1.5\n\
             # HELP depth Queue depth.\n\
             # TYPE depth gauge\n\
             depth -2\n\
             # HELP hits_total Hits by path.\n\
             # TYPE hits_total counter\n\
             hits_total{path=\"a\\\"b\\\\c\\nd\"} 1\n\
             # HELP latency Latency.\n\
             # TYPE latency histogram\n\
             latency_sum 0.7\n\
             latency_count 1\n\
             latency_bucket{le=\"0.5\"} 0\n\
             latency_bucket{le=\"1.0\"} 1\n\
             latency_bucket{le=\"+Inf\"} 1\n\
             # HELP build_info Build facts.\n\
             # TYPE build_info gauge\n\
             build_info{version=\"1\"} 1\n\
             # HELP traced_total Traced.\n\
             # TYPE traced_total counter\n\
             traced_total 2\n"
        );
    }

    #[test]
    fn samples_parse_with_labels_exemplars_and_timestamps() {
        let s = Sample::parse("x_total{a=\"} # {\",b=\"\\\"\"} 4 # {t=\"1\"} 1.0 5").unwrap();
        assert_eq!(s.name, "x_total");
        assert_eq!(s.labels, "{a=\"} # {\",b=\"\\\"\"}");
        assert_eq!((s.value, s.timestamp), ("4", None));
        let s = Sample::parse("y 1.5 1700000000.25").unwrap();
        assert_eq!(s.timestamp_ms(), Some(1_700_000_000_250));
        assert_eq!(Sample::parse("y"), None);
        assert_eq!(Sample::parse("y{a=\"1\" 2"), None);
        assert_eq!(
            to_text_004("# HELP c C\n# TYPE c counter\nc_total 1\nc_created 17.5\n# EOF\n"),
            "# HELP c_total C\n# TYPE c_total counter\nc_total 1\n"
        );
        assert_eq!(
            to_text_004("# HELP u U\n# TYPE u unknown\nu 1 2.5\n"),
            "# HELP u U\n# TYPE u untyped\nu 1 2500\n"
        );
    }
}
