//! The registry behind the node's metrics, and the refreshers that set some of them at each
//! scrape.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;

use super::text::{self, Format};
use prometheus_client::registry::Registry;

/// A refresher: sets some metrics from the current state of a part, just before a scrape.
pub type Refresh = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The longest one refresher may take at a scrape; past it, its metrics keep their last values.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

/// The node's metrics; cloning shares them.
#[derive(Clone, Default)]
pub struct Metrics(Arc<Inner>);

#[derive(Default)]
struct Inner {
    registry: RwLock<Registry>,
    /// The transport's byte counters, apart so that `stats/bw` can read their totals back.
    bandwidth: RwLock<Registry>,
    refreshers: Mutex<Vec<Arc<Refresh>>>,
    rates: Mutex<Rates>,
    /// Values registered once per node and shared by whoever asks for their type (the HTTP
    /// servers' request families).
    shared: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Bytes through the transport, all protocols, and their recent rates (bytes per second).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bandwidth {
    /// Bytes received.
    pub total_in: u64,
    /// Bytes sent.
    pub total_out: u64,
    /// Bytes received per second, over the last sampling interval.
    pub rate_in: f64,
    /// Bytes sent per second, over the last sampling interval.
    pub rate_out: f64,
}

#[derive(Debug, Default)]
struct Rates {
    last: Option<(Instant, u64, u64)>,
    rate_in: f64,
    rate_out: f64,
}

impl Metrics {
    /// The value of type `T` these metrics share, made by `init` the first time it is asked
    /// for: families that several parts register once and then all update.
    pub fn shared<T: Clone + Send + Sync + 'static>(&self, init: impl FnOnce() -> T) -> T {
        let mut shared = self.0.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = shared
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
        {
            return value.clone();
        }
        let value = init();
        shared.insert(TypeId::of::<T>(), Box::new(value.clone()));
        value
    }

    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers metrics with the registry.
    pub fn register<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self
            .0
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Registers the transport's byte counters.
    pub(crate) fn register_bandwidth<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self
            .0
            .bandwidth
            .write()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds a refresher, run before every scrape.
    pub fn on_scrape<F, Fut>(&self, f: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let refresh: Refresh = Box::new(move || Box::pin(f()));
        self.0
            .refreshers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(refresh));
    }

    /// Every metric in `format`, refreshed first.
    pub async fn render_as(&self, format: Format) -> String {
        let openmetrics = self.render().await;
        match format {
            Format::OpenMetrics => openmetrics,
            Format::Text => text::to_text_004(&openmetrics),
        }
    }

    /// Every metric in the OpenMetrics text format, refreshed first.
    pub async fn render(&self) -> String {
        let refreshers: Vec<Arc<Refresh>> = self
            .0
            .refreshers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let runs = refreshers
            .iter()
            .map(|r| tokio::time::timeout(REFRESH_TIMEOUT, r()));
        futures::future::join_all(runs).await;
        let mut text = String::new();
        let registry = self
            .0
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &registry);
        drop(registry);
        let body = text.strip_suffix("# EOF\n").unwrap_or(&text).to_string();
        let mut text = body;
        let bandwidth = self
            .0
            .bandwidth
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = encode(&mut text, &bandwidth);
        text
    }

    /// The transport's totals, and the rates [`Metrics::sample`] last measured.
    pub fn bandwidth(&self) -> Bandwidth {
        let (total_in, total_out) = self.totals();
        let rates = self.0.rates.lock().unwrap_or_else(PoisonError::into_inner);
        Bandwidth {
            total_in,
            total_out,
            rate_in: rates.rate_in,
            rate_out: rates.rate_out,
        }
    }

    /// Measures the transport's rates since the last sample; call it every second or so.
    pub fn sample(&self) {
        let (total_in, total_out) = self.totals();
        let now = Instant::now();
        let mut rates = self.0.rates.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((then, last_in, last_out)) = rates.last {
            let secs = now.duration_since(then).as_secs_f64();
            if secs > 0.0 {
                rates.rate_in = total_in.saturating_sub(last_in) as f64 / secs;
                rates.rate_out = total_out.saturating_sub(last_out) as f64 / secs;
            }
        }
        rates.last = Some((now, total_in, total_out));
    }

    /// Sums the transport's byte counters by direction, read back from their encoding.
    fn totals(&self) -> (u64, u64) {
        let mut text = String::new();
        let bandwidth = self
            .0
            .bandwidth
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = encode(&mut text, &bandwidth);
        drop(bandwidth);
        sum_directions(&text)
    }
}

/// Inbound and outbound sums of `libp2p_bandwidth_bytes_total` samples in `text`.
fn sum_directions(text: &str) -> (u64, u64) {
    let (mut inbound, mut outbound) = (0u64, 0u64);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("libp2p_bandwidth_bytes_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        if labels.contains("direction=\"Inbound\"") {
            inbound = inbound.saturating_add(value);
        } else if labels.contains("direction=\"Outbound\"") {
            outbound = outbound.saturating_add(value);
        }
    }
    (inbound, outbound)
}

/// Samples the transport's rates every second until the task is aborted.
pub async fn sample_forever(metrics: Metrics) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        metrics.sample();
    }
}

/// A counter set to an absolute value read elsewhere (a part's own monotonic count).
pub fn set_counter(counter: &prometheus_client::metrics::counter::Counter, value: u64) {
    counter
        .inner()
        .store(value, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::gauge::Gauge;

    #[test]
    fn bandwidth_sums_by_direction_across_protocols() {
        let text = "# TYPE libp2p_bandwidth_bytes counter\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} 100\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/udp/quic-v1\",direction=\"Inbound\"} 20\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Outbound\"} 7\n# EOF\n";
        assert_eq!(sum_directions(text), (120, 7));
    }

    #[tokio::test]
    async fn refreshers_run_before_the_text_is_made() {
        let metrics = Metrics::new();
        let gauge = Gauge::<i64>::default();
        metrics.register(|r| r.register("ipfsbench_test_value", "A test value", gauge.clone()));
        let g = gauge.clone();
        metrics.on_scrape(move || {
            let g = g.clone();
            async move {
                g.set(42);
            }
        });
        let text = metrics.render().await;
        assert!(text.contains("ipfsbench_test_value 42"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
