//! The one HTTPS client every SDK client of a function shares, and whom it trusts.
//!
//! The SDK's default client trusts the platform's root store, which means reading and
//! parsing every certificate on the system (a bundle plus a directory of ~150 files) the
//! first time a client connects, and parsing them again for each connector. Measured in a
//! fresh process, that was 8–11 ms of CPU of a cold start, on the init task that runs beside
//! the runtime's first poll (see `bench/notes/cold-start.md`).
//!
//! A function only ever talks to AWS endpoints, and every AWS endpoint (regional, FIPS, VPC
//! interface endpoints alike) presents a chain to Amazon Trust Services. So by default the
//! client trusts exactly those roots, compiled in: nothing is read from disk, five
//! certificates are parsed, and a certificate from any other public CA is refused.
//! `TLS_ROOTS=native` restores the platform store (honouring `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`) for networks that re-sign TLS through an inspecting proxy.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::TlsRoots;

/// Amazon Root CA 1–4 and Starfield Services Root CA G2 (which cross-signs them for older
/// clients), as shipped in Mozilla's root programme.
pub const AWS_ROOTS_PEM: &str = include_str!("../certs/aws-roots.pem");

/// The trust store for `roots`.
fn trust_store(roots: TlsRoots) -> TrustStore {
    match roots {
        TlsRoots::Aws => TrustStore::empty().with_pem_certificate(AWS_ROOTS_PEM),
        TlsRoots::Native => TrustStore::default(),
    }
}

/// The SDK's default HTTPS client (rustls on aws-lc, proxy settings from the environment, the
/// per-client timeouts) with the trust store of `roots`. Connectors are still built lazily,
/// one per distinct set of timeouts, by the SDK. [`crate::aws::AwsEnv::sdk_config`] hands it
/// to every client.
pub(crate) fn client(roots: TlsRoots) -> SharedHttpClient {
    client_trusting(trust_store(roots))
}

fn client_trusting(store: TrustStore) -> SharedHttpClient {
    let tls = TlsContext::builder()
        .with_trust_store(store)
        .build()
        .expect("building a TLS context only stores its arguments");
    // Read once: the SDK builds a connector per distinct set of timeouts.
    let proxy = ProxyConfig::from_env();
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = Connector::builder()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(proxy.clone()));
        connector.build()
    })
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::*;

    fn aws_roots() -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(AWS_ROOTS_PEM.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the compiled-in roots are valid PEM")
    }

    #[test]
    fn every_compiled_in_root_is_a_certificate_rustls_accepts_as_an_anchor() {
        // The HTTPS client parses these with `expect` when it builds a connector: a bad one
        // would panic on a function's first AWS call, so it must fail here instead.
        let mut store = rustls::RootCertStore::empty();
        let (added, rejected) = store.add_parsable_certificates(aws_roots());
        assert_eq!((added, rejected), (5, 0));
    }

    #[test]
    fn the_compiled_in_roots_are_amazon_trust_services_and_its_cross_signer() {
        let subjects: Vec<String> = aws_roots()
            .iter()
            .map(|der| {
                let anchor = webpki::anchor_from_trusted_cert(der).expect("a trust anchor");
                String::from_utf8_lossy(&anchor.subject).into_owned()
            })
            .collect();
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(
                subjects.iter().any(|s| s.contains(name)),
                "{name} missing from {subjects:?}"
            );
        }
    }

    /// A TLS server on loopback with a certificate for `localhost` issued by a throwaway test
    /// CA (its key was discarded), answering every request as DynamoDB's ListTables would.
    async fn tls_server() -> u16 {
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let chain =
            CertificateDer::pem_slice_iter(include_bytes!("../tests/fixtures/tls/localhost.pem"))
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(include_bytes!(
            "../tests/fixtures/tls/localhost.key"
        ))
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue; // the client refused the certificate
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"TableNames":[]}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            }
        });
        port
    }

    async fn list_tables_over(client: SharedHttpClient, port: u16) -> Result<(), String> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(client)
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDTEST", "test", None, None, "tests",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .endpoint_url(format!("https://localhost:{port}"))
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await
            .map(drop)
            .map_err(|e| format!("{:?}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
    }

    #[tokio::test]
    async fn the_client_completes_a_request_to_a_server_its_trust_store_vouches_for() {
        let port = tls_server().await;
        let store = TrustStore::empty()
            .with_pem_certificate(include_bytes!("../tests/fixtures/tls/ca.pem").as_slice());

        let result = list_tables_over(client_trusting(store), port).await;

        assert_eq!(result, Ok(()));
    }

    #[tokio::test]
    async fn the_aws_trust_store_refuses_a_certificate_it_does_not_vouch_for() {
        let port = tls_server().await;

        let result = list_tables_over(client(TlsRoots::Aws), port).await;

        let error = result.expect_err("a certificate from the test CA was accepted");
        assert!(error.contains("UnknownIssuer"), "{error}");
    }
}
