//! Logging, and traces when asked: one subscriber for every command.
//!
//! Logs go to standard error: `log.format = "auto"` (the default) writes readable lines
//! when standard error is a terminal (a person watching) and JSON lines otherwise
//! (journald, a container runtime, a log shipper); `json` and `text` force one. `RUST_LOG`
//! chooses what is logged.
//!
//! Traces: with `telemetry.otlp_endpoint` set, every span (one per request, carrying its
//! request id, and those inside it) is also exported over OTLP/HTTP to an OpenTelemetry
//! collector. That needs a build with the `otel` cargo feature, off by default: it adds a
//! dozen crates (the OpenTelemetry SDK, protobuf) that most issuers would carry unused, and
//! every dependency is code to review in a service that holds card data. A build without it
//! refuses a configuration that sets the endpoint, rather than ignoring it.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The two ways a line can look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The format for `log.format` when standard error is (or is not) a terminal.
pub fn choose(setting: &str, stderr_is_terminal: bool) -> LogFormat {
    match setting {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        _ if stderr_is_terminal => LogFormat::Text,
        _ => LogFormat::Json,
    }
}

/// Whether this build can export traces (the `otel` feature).
pub const TRACES_BUILT_IN: bool = cfg!(feature = "otel");

/// Keeps the trace exporter alive; dropping it sends the spans still buffered.
#[derive(Default)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: sending the last traces failed: {e}");
            }
        }
    }
}

type Filtered = tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>;
type BoxedLayer = Box<dyn Layer<Filtered> + Send + Sync>;

/// Installs the subscriber. `default_filter` applies when `RUST_LOG` is unset. A second
/// call changes nothing (tests may build apps freely). Fails only when `otlp_endpoint` is
/// set and traces cannot be exported (a build without `otel`, or a bad endpoint).
pub fn init(
    setting: &str,
    default_filter: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let terminal = std::io::stderr().is_terminal();
    let fmt: BoxedLayer = match choose(setting, terminal) {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(terminal)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let mut layers = vec![fmt];
    let mut telemetry = Telemetry::default();
    if let Some(endpoint) = otlp_endpoint {
        let (layer, kept) = traces(endpoint)?;
        layers.push(layer);
        telemetry = kept;
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init();
    Ok(telemetry)
}

#[cfg(not(feature = "otel"))]
fn traces(_endpoint: &str) -> anyhow::Result<(BoxedLayer, Telemetry)> {
    anyhow::bail!(
        "telemetry.otlp_endpoint is set, but this build has no OpenTelemetry support: build \
         with `cargo build --release --features otel`, or unset it"
    )
}

#[cfg(feature = "otel")]
fn traces(endpoint: &str) -> anyhow::Result<(BoxedLayer, Telemetry)> {
    use anyhow::Context;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;

    use opentelemetry_otlp::WithHttpConfig;

    let runtime = tokio::runtime::Handle::try_current()
        .context("traces are exported from the service's runtime")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_http_client(OnRuntime {
            client: std::sync::Arc::new(
                opentelemetry_http::hyper::HyperClient::with_default_connector(
                    std::time::Duration::from_secs(10),
                    None,
                ),
            ),
            runtime,
        })
        .build()
        .with_context(|| format!("the OTLP exporter for {endpoint}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("portcullis")
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("portcullis"))
        .boxed();
    Ok((
        layer,
        Telemetry {
            provider: Some(provider),
        },
    ))
}

/// The hyper client, its requests run on the service's tokio runtime: the SDK's batch
/// exporter calls it from a thread of its own, where hyper finds no runtime.
#[cfg(feature = "otel")]
#[derive(Debug)]
struct OnRuntime {
    client: std::sync::Arc<opentelemetry_http::hyper::HyperClient>,
    runtime: tokio::runtime::Handle,
}

#[cfg(feature = "otel")]
#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_terminal_and_the_setting_wins() {
        assert_eq!(choose("auto", true), LogFormat::Text);
        assert_eq!(choose("auto", false), LogFormat::Json);
        assert_eq!(choose("json", true), LogFormat::Json);
        assert_eq!(choose("text", false), LogFormat::Text);
    }
}
