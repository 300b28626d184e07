//! What TLS Ferry speaks: the crypto provider, both sides' configurations, and the client's
//! verifier, which checks the server's key and leaves its certificate to the fingerprint.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

/// The crypto Ferry uses: rustls' ring provider (AES-GCM and ChaCha20-Poly1305, X25519).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| {
        use rustls::crypto::ring::cipher_suite;
        let mut provider = rustls::crypto::ring::default_provider();
        // AES-128 first: ten rounds to AES-256's fourteen, a third less work per byte on the
        // big transfers, and still far beyond any attack. Both ends ask for it first.
        provider.cipher_suites = vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ];
        Arc::new(provider)
    }))
}

/// A server's TLS configuration for the certificate `cert_der` and its key (PKCS#8 DER).
pub fn server_config(cert_der: &[u8], key_der: &[u8]) -> Result<Arc<ServerConfig>, rustls::Error> {
    let key =
        PrivateKeyDer::try_from(key_der.to_vec()).map_err(|e| rustls::Error::General(e.into()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert_der.to_vec())], key)?;
    // Every session is a fresh handshake: nothing to resume, so no tickets to send.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client's TLS configuration: TLS 1.3 only, any certificate whose key the server proves
/// it holds (its fingerprint is checked by the caller), no resumption.
pub(super) fn client_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let algorithms = provider().signature_verification_algorithms;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("the ring provider speaks TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned(algorithms)))
            .with_no_client_auth();
        config.enable_sni = false;
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }))
}

/// Accepts the certificate itself (the fingerprint is compared after the handshake, before
/// anything is sent), but verifies the handshake's signature with its key, so a server must
/// hold the key of the certificate it presents.
#[derive(Debug)]
struct Pinned(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("only TLS 1.3 is offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
