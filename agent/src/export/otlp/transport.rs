//! Sending one encoded push: OTLP/HTTP (`POST …/v1/metrics`, protobuf body) or OTLP/gRPC
//! (`MetricsService/Export`, `opentelemetry-proto`'s tonic client). Live and buffered pushes take
//! the same path, so a replayed push is byte-for-byte what would have been sent live.

use std::io::Read;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig};

use super::buffer::Payload;
use super::settings::{Compression, OtlpConfig, Protocol};
use crate::util::error_chain;

/// Why a push failed, and whether sending it again can succeed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// False when the receiver refused the data itself (bad request): resending cannot help,
    /// so the push is dropped instead of blocking the queue.
    pub retryable: bool,
}

impl SendError {
    fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
}

/// A configured connection to the receiver.
pub enum Transport {
    Http {
        client: reqwest::Client,
        url: String,
        timeout: Duration,
    },
    Grpc {
        client: MetricsServiceClient<Channel>,
        metadata: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
    },
}

impl Transport {
    /// Builds the transport; connects lazily (on the first push).
    pub fn new(config: &OtlpConfig) -> anyhow::Result<Self> {
        match config.protocol {
            Protocol::HttpProtobuf => {
                let url = config.http_url();
                let mut headers = reqwest::header::HeaderMap::new();
                for (k, v) in &config.headers {
                    headers.insert(
                        reqwest::header::HeaderName::from_bytes(k.as_bytes())?,
                        reqwest::header::HeaderValue::from_str(v)?,
                    );
                }
                let mut builder = reqwest::Client::builder()
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .user_agent(crate::user_agent())
                    .default_headers(headers);
                if url.starts_with("https://") {
                    // The operating system's trust store, as for the control plane.
                    builder = builder
                        .use_preconfigured_tls((*crate::control::tls::client_config()?).clone());
                }
                Ok(Transport::Http {
                    client: builder.build()?,
                    url,
                    timeout: config.timeout,
                })
            }
            Protocol::Grpc => {
                let endpoint = config.endpoint().to_owned();
                let mut channel = Channel::from_shared(endpoint.clone())
                    .map_err(|e| anyhow::anyhow!("otlp: endpoint `{endpoint}`: {e}"))?
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout);
                if endpoint.starts_with("https://") {
                    channel = channel.tls_config(ClientTlsConfig::new().with_native_roots())?;
                }
                let channel = channel.connect_lazy();
                let mut client = MetricsServiceClient::new(channel);
                if config.compression == Compression::Gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                client = client.accept_compressed(CompressionEncoding::Gzip);
                let metadata = config
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())?,
                            MetadataValue::try_from(v.as_str())?,
                        ))
                    })
                    .collect::<anyhow::Result<_>>()?;
                Ok(Transport::Grpc { client, metadata })
            }
        }
    }

    /// Sends one push.
    pub async fn send(&mut self, payload: &Payload) -> Result<(), SendError> {
        match self {
            Transport::Http {
                client,
                url,
                timeout,
            } => {
                let mut req = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf")
                    .body(payload.body.clone());
                if payload.gzip {
                    req = req.header("content-encoding", "gzip");
                }
                let response = req.send().await.map_err(|e| {
                    SendError::retry(if e.is_timeout() {
                        format!("no answer within {}", humantime::format_duration(*timeout))
                    } else {
                        error_chain(&e)
                    })
                })?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let body = response.bytes().await.unwrap_or_default();
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                // OTLP/HTTP: 429, 502, 503, 504 are retryable; we also retry any 5xx and 408
                // (a backend restarting), and drop pushes refused with another 4xx.
                let retryable = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                Err(SendError {
                    message: format!("HTTP {status}: {}", text.trim()),
                    retryable,
                })
            }
            Transport::Grpc { client, metadata } => {
                let request = decode(payload).map_err(|message| SendError {
                    message,
                    retryable: false,
                })?;
                let mut request = tonic::Request::new(request);
                for (k, v) in metadata.iter() {
                    request.metadata_mut().insert(k.clone(), v.clone());
                }
                match client.export(request).await {
                    Ok(_) => Ok(()),
                    Err(status) => {
                        use tonic::Code::*;
                        let retryable = matches!(
                            status.code(),
                            Unavailable
                                | ResourceExhausted
                                | DeadlineExceeded
                                | Aborted
                                | Cancelled
                                | OutOfRange
                                | DataLoss
                                | Unknown
                                | Internal
                        );
                        Err(SendError {
                            message: format!("gRPC {:?}: {}", status.code(), status.message()),
                            retryable,
                        })
                    }
                }
            }
        }
    }
}

/// The request inside a stored push (gRPC re-encodes it; tonic compresses on its own).
pub fn decode(payload: &Payload) -> Result<ExportMetricsServiceRequest, String> {
    let plain;
    let bytes: &[u8] = if payload.gzip {
        let mut out = Vec::with_capacity(payload.body.len() * 8);
        flate2::read::GzDecoder::new(&payload.body[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("corrupt buffered push: {e}"))?;
        plain = out;
        &plain
    } else {
        &payload.body
    };
    ExportMetricsServiceRequest::decode(bytes).map_err(|e| format!("corrupt buffered push: {e}"))
}

/// gzip at the default level (what OTLP exporters use).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}
