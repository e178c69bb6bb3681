//! TLS for QUIC sessions: the host's certificate, how clients trust it, and the quinn
//! configurations built from both.
//!
//! TLS is always on and always TLS 1.3 (QUIC requires it), with ALPN [`ALPN`] (`theta/1`)
//! on both sides: a peer offering another protocol, or none, is refused during the
//! handshake with the TLS alert `no_application_protocol` (QUIC error `0x178`).
//!
//! The host presents a certificate chain, self-signed by default
//! ([`HostIdentity::self_signed`]) or loaded from PEM ([`HostIdentity::from_pem`]).
//! A client trusts it in one of two ways ([`ServerTrust`]):
//!
//! - it pins the SHA-256 [`Fingerprint`] of the host's leaf certificate (the server name
//!   and the validity dates are ignored, the handshake signature is still checked, so only
//!   the holder of the certificate's private key can complete the handshake), or
//! - it verifies the chain up to one of the given CA roots with rustls' WebPKI verifier,
//!   including the server name given to `quinn::Endpoint::connect`.
//!
//! All rustls configurations use the *ring* crypto provider explicitly; the process-wide
//! default provider is never consulted or installed.
//!
//! [`handshake_refusal`] turns the `quinn::ConnectionError` of a refused handshake into a
//! [`HandshakeRefusal`] saying why.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::hex::{hex_decode, hex_encode};

use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

/// The ALPN protocol identifier of theta sessions; both sides offer only this one.
pub const ALPN: &[u8] = b"theta/1";

/// TLS alert `bad_certificate` (RFC 8446 §6.2).
const ALERT_BAD_CERTIFICATE: u8 = 42;
/// TLS alert `unsupported_certificate`.
const ALERT_UNSUPPORTED_CERTIFICATE: u8 = 43;
/// TLS alert `certificate_revoked`.
const ALERT_CERTIFICATE_REVOKED: u8 = 44;
/// TLS alert `certificate_expired`.
const ALERT_CERTIFICATE_EXPIRED: u8 = 45;
/// TLS alert `certificate_unknown`; rustls sends it for a verifier's own errors, hence for
/// a fingerprint mismatch.
const ALERT_CERTIFICATE_UNKNOWN: u8 = 46;
/// TLS alert `unknown_ca`.
const ALERT_UNKNOWN_CA: u8 = 48;
/// TLS alert `decrypt_error`: a handshake signature did not verify.
const ALERT_DECRYPT_ERROR: u8 = 51;
/// TLS alert `no_application_protocol` (QUIC error 0x178).
const ALERT_NO_APPLICATION_PROTOCOL: u8 = 120;

/// Text every fingerprint-mismatch error contains, so that it can be recognised after it
/// has crossed rustls and quinn as a string.
const FINGERPRINT_MISMATCH_TEXT: &str = "certificate fingerprint mismatch";

/// Errors building TLS identities and configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not generate the self-signed certificate.
    #[error("cannot generate a self-signed certificate: {0}")]
    CertificateGeneration(#[from] rcgen::Error),
    /// A PEM input could not be parsed.
    #[error("invalid PEM {what}: {source}")]
    Pem {
        /// Which input: "certificate chain" or "private key".
        what: &'static str,
        /// The PEM parser's error.
        source: rustls::pki_types::pem::Error,
    },
    /// The PEM certificate chain holds no certificate.
    #[error("no certificate found in the PEM certificate chain")]
    NoCertificate,
    /// The private key is unusable, or does not belong to the leaf certificate.
    #[error("unusable certificate/private key pair: {0}")]
    KeyPair(rustls::Error),
    /// A CA root certificate could not be used as a trust anchor.
    #[error("invalid CA root certificate: {0}")]
    InvalidRoot(rustls::Error),
    /// [`ServerTrust::CaRoots`] was given no certificate.
    #[error("no CA root certificate given")]
    NoRoots,
    /// rustls' WebPKI verifier could not be built.
    #[error("cannot build the CA chain verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// rustls refused the configuration.
    #[error("TLS configuration error: {0}")]
    Config(rustls::Error),
    /// The rustls configuration cannot be used by QUIC.
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(#[from] NoInitialCipherSuite),
    /// A fingerprint's text form is invalid.
    #[error("invalid certificate fingerprint: {0}")]
    BadFingerprint(String),
}

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The SHA-256 fingerprint of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// Lowercase hex, 64 characters, no separators.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Parses 64 hex digits (upper or lower case), optionally written as 32 colon-separated
    /// pairs (`AB:CD:...`, as `openssl x509 -fingerprint -sha256` prints them). Surrounding
    /// whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<Self, TlsError> {
        let text = text.trim();
        let digits: String = if text.contains(':') {
            let parts: Vec<&str> = text.split(':').collect();
            if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
                return Err(TlsError::BadFingerprint(
                    "with ':' separators it must be 32 pairs of hex digits".to_owned(),
                ));
            }
            parts.concat()
        } else {
            text.to_owned()
        };
        if digits.len() != 64 {
            return Err(TlsError::BadFingerprint(format!(
                "expected 64 hex digits, got {} characters",
                digits.len()
            )));
        }
        let bytes = hex_decode(&digits).map_err(TlsError::BadFingerprint)?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl FromStr for Fingerprint {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

/// The host's TLS identity: a certificate chain (leaf first) and the leaf's private key.
///
/// The constructors check that the chain is not empty and that the key is usable with the
/// *ring* provider and matches the leaf certificate.
pub struct HostIdentity {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    fingerprint: Fingerprint,
}

impl HostIdentity {
    /// A fresh self-signed certificate (ECDSA P-256) for the given subject alternative names
    /// (DNS names or IP addresses); an empty slice means `["localhost"]`.
    pub fn self_signed(subject_alt_names: &[String]) -> Result<Self, TlsError> {
        let names = if subject_alt_names.is_empty() {
            vec!["localhost".to_owned()]
        } else {
            subject_alt_names.to_vec()
        };
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        Self::new(vec![cert.der().clone()], key)
    }

    /// Loads a certificate chain (PEM, leaf first, intermediates after) and the leaf's
    /// private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_chain_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let cert_chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "certificate chain",
                source,
            })?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| TlsError::Pem {
                what: "private key",
                source,
            })?;
        Self::new(cert_chain, key)
    }

    fn new(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let leaf = cert_chain.first().ok_or(TlsError::NoCertificate)?;
        let fingerprint = Fingerprint::of_certificate(leaf);
        // Loads the key with the ring provider and compares its public key with the leaf's.
        rustls::sign::CertifiedKey::from_der(cert_chain.clone(), key.clone_key(), &provider())
            .map_err(TlsError::KeyPair)?;
        Ok(Self {
            cert_chain,
            key,
            fingerprint,
        })
    }

    /// SHA-256 of the leaf certificate's DER: what clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The certificate chain and the private key as PEM text, in the forms
    /// [`HostIdentity::from_pem`] reads back (to keep a self-signed identity, and so its
    /// fingerprint, across host restarts). The key is secret: store it accordingly.
    pub fn to_pem(&self) -> (String, String) {
        let chain = self
            .cert_chain
            .iter()
            .map(|c| pem_encode("CERTIFICATE", c.as_ref()))
            .collect();
        let key_label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        (chain, pem_encode(key_label, self.key.secret_der()))
    }
}

impl Clone for HostIdentity {
    fn clone(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

impl fmt::Debug for HostIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("chain_len", &self.cert_chain.len())
            .finish_non_exhaustive()
    }
}

/// How a client decides to trust the host's certificate.
#[derive(Clone, Debug)]
pub enum ServerTrust {
    /// Accept exactly the leaf certificate with this SHA-256; ignore the server name and the
    /// validity dates.
    Fingerprint(Fingerprint),
    /// Verify the chain (and the server name) up to one of these CA root certificates.
    CaRoots(Vec<CertificateDer<'static>>),
}

/// The *ring* provider, created explicitly for every configuration.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a pinned server certificate was rejected; carried inside
/// `rustls::CertificateError::Other`.
///
/// rustls formats `CertificateError::Other` with `Debug`, so `Debug` prints the same
/// human-readable message as `Display`.
#[derive(thiserror::Error)]
#[error("server {FINGERPRINT_MISMATCH_TEXT}: pinned sha256 {expected}, server presented {actual}")]
struct FingerprintMismatch {
    expected: Fingerprint,
    actual: Fingerprint,
}

impl fmt::Debug for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Accepts exactly one leaf certificate, by SHA-256, and still checks the handshake
/// signatures made with its key.
#[derive(Debug)]
struct PinnedServerVerifier {
    pinned: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = Fingerprint::of_certificate(end_entity);
        if actual == self.pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(FingerprintMismatch {
                    expected: self.pinned,
                    actual,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls server configuration: TLS 1.3 only, ALPN [`ALPN`], no client certificates,
/// no 0-RTT.
fn rustls_server_config(identity: &HostIdentity) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(TlsError::KeyPair)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The rustls client configuration: TLS 1.3 only, ALPN [`ALPN`], the verifier `trust`
/// asks for, no client certificate, no 0-RTT.
fn rustls_client_config(trust: &ServerTrust) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?;
    let mut config = match trust {
        ServerTrust::Fingerprint(pinned) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier {
                pinned: *pinned,
                provider,
            }))
            .with_no_client_auth(),
        ServerTrust::CaRoots(roots) => {
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
            let mut store = RootCertStore::empty();
            for root in roots {
                store.add(root.clone()).map_err(TlsError::InvalidRoot)?;
            }
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider).build()?;
            builder.with_webpki_verifier(verifier).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Connection attempts quinn holds before the host decides on them (it decides on each at
/// once: admit, retry or refuse); more are refused by quinn itself.
const MAX_INCOMING: usize = 1024;
/// Bytes quinn buffers for one connection attempt before the host decides on it (the
/// client's handshake; 0-RTT is off, so no application data).
const INCOMING_BUFFER_BYTES: u64 = 64 << 10;
/// Bytes quinn buffers for all connection attempts together.
const INCOMING_BUFFER_TOTAL_BYTES: u64 = 4 << 20;

/// The host's quinn server configuration: TLS 1.3 with `identity`, ALPN [`ALPN`] (clients
/// offering another protocol or none are refused in the handshake), and `transport`
/// (a host uses [`host_transport_config`]). What quinn buffers for connection attempts
/// before the host decides on them is bounded (1024 attempts, 64 KiB each, 4 MiB in all,
/// where quinn allows 65 536, 10 MiB and 100 MiB by default).
pub fn server_config(
    identity: &HostIdentity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TlsError> {
    let crypto = QuicServerConfig::try_from(rustls_server_config(identity)?)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config
        .transport_config(transport)
        .max_incoming(MAX_INCOMING)
        .incoming_buffer_size(INCOMING_BUFFER_BYTES)
        .incoming_buffer_size_total(INCOMING_BUFFER_TOTAL_BYTES);
    Ok(config)
}

/// A client's quinn configuration: TLS 1.3 trusting the host as `trust` says, ALPN
/// [`ALPN`], and `transport`.
///
/// With [`ServerTrust::Fingerprint`] the server name passed to `quinn::Endpoint::connect`
/// only has to be syntactically valid (e.g. `"localhost"`); with [`ServerTrust::CaRoots`]
/// it must be one of the certificate's subject alternative names.
pub fn client_config(
    trust: &ServerTrust,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TlsError> {
    let crypto = QuicClientConfig::try_from(rustls_client_config(trust)?)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}

/// Packets that must be acknowledged after one before QUIC declares it lost (RFC 9002: 3).
const REORDER_PACKETS: u32 = 20;
/// Round trips after which an unacknowledged packet is lost, when a later one was
/// acknowledged (RFC 9002: 9/8).
const REORDER_TIME: f32 = 1.5;
/// Ack-eliciting packets the peer may receive before it must acknowledge at once.
const ACK_ELICITING_THRESHOLD: u32 = 16;

/// A QUIC transport configuration with datagrams enabled (1 MiB receive and send buffers),
/// the given idle timeout and keep-alive interval.
///
/// A zero `idle_timeout` disables the idle timeout (QUIC's convention), one beyond QUIC's
/// limit (2^62 ms) is clamped to it; a zero `keep_alive` disables keep-alives. The
/// effective idle timeout of a connection is the smaller of the two sides' values, so
/// `keep_alive` should be well below both. Loss detection tolerates reordering (see the
/// body); the congestion controller is quinn's default until [`CongestionControl::apply`].
pub fn transport_config(idle_timeout: Duration, keep_alive: Duration) -> quinn::TransportConfig {
    let mut config = quinn::TransportConfig::default();
    config.datagram_receive_buffer_size(Some(1 << 20));
    config.datagram_send_buffer_size(1 << 20);
    let idle = quinn::IdleTimeout::try_from(idle_timeout)
        .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::MAX));
    config.max_idle_timeout(Some(idle));
    config.keep_alive_interval((!keep_alive.is_zero()).then_some(keep_alive));
    // Datagrams overtake each other on real paths (Wi-Fi reorders by delay variation):
    // with RFC 9002's thresholds (3 packets, 9/8 RTT) QUIC declares them lost although
    // they arrive, and congestion control shrinks for nothing. Loss is declared by time
    // instead, past one and a half round trips.
    config.packet_threshold(REORDER_PACKETS);
    config.time_threshold(REORDER_TIME);
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.ack_eliciting_threshold(ACK_ELICITING_THRESHOLD.into())
        .reordering_threshold((REORDER_PACKETS - 1).into());
    config.ack_frequency_config(Some(acks));
    config
}

/// The congestion controller of a session's connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CongestionControl {
    /// BBR (the default): models the path's bandwidth and round trip instead of reading
    /// every loss as congestion. On a lossy radio link (random loss, not queue overflow)
    /// Cubic's window collapses below what a scene needs (measured at 10 % loss and
    /// 20 ± 10 ms: a scene of 170 kB/s fell 3.6 s behind with Cubic, 2 ticks with BBR),
    /// and Cubic fills the queues that add latency to every update. quinn marks its BBR
    /// experimental, hence the choice.
    #[default]
    Bbr,
    /// Cubic (quinn's default, RFC 9438): halves its window on loss, whatever caused it.
    Cubic,
}

impl CongestionControl {
    /// Sets this controller in `config`.
    pub fn apply(self, config: &mut quinn::TransportConfig) {
        match self {
            CongestionControl::Bbr => config
                .congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default())),
            CongestionControl::Cubic => config
                .congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default())),
        };
    }
}

/// Stream data a connection may have the host hold before its peer is admitted: the
/// connection-level receive window of every connection until admission widens it to
/// [`ADMITTED_RECEIVE_WINDOW`]. The one stream a peer may open then carries only the join
/// request (at most 4 KiB and its length).
pub const ADMISSION_RECEIVE_WINDOW: u32 = 16 << 10;
/// Receive window of one stream from a client: its one stream carries control messages
/// and the values too large for a datagram (at most 1 MiB each), read as they arrive, so
/// the window only paces them (a 1 MiB value takes one round trip).
pub const HOST_STREAM_WINDOW: u32 = 1 << 20;
/// Connection-level receive window of an admitted client: its one stream's window.
pub const ADMITTED_RECEIVE_WINDOW: u32 = HOST_STREAM_WINDOW;
/// Datagrams the host buffers per connection until its reader takes them (bytes): about a
/// hundred full-size datagrams, several ticks of a client's state and poses. Before
/// admission the host reads and drops them, so they cannot pile up.
pub const HOST_DATAGRAM_BUFFER: usize = 128 << 10;

/// The host's transport configuration ([`transport_config`] with the limits of issue 12):
/// a client may open one bidirectional stream (the join stream, which carries the whole
/// session) and no unidirectional one; the connection's receive window is
/// [`ADMISSION_RECEIVE_WINDOW`] until the host admits the peer and widens it to
/// [`ADMITTED_RECEIVE_WINDOW`] (`quinn::Connection::set_receive_window`); each stream's
/// window is [`HOST_STREAM_WINDOW`] and received datagrams are buffered up to
/// [`HOST_DATAGRAM_BUFFER`]. quinn's defaults, 100 streams of each kind with 1.25 MB
/// windows and no connection-level limit, let one unauthenticated connection make the host
/// hold hundreds of megabytes.
pub fn host_transport_config(
    idle_timeout: Duration,
    keep_alive: Duration,
) -> quinn::TransportConfig {
    let mut config = transport_config(idle_timeout, keep_alive);
    config
        .max_concurrent_bidi_streams(1u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(HOST_STREAM_WINDOW.into())
        .receive_window(ADMISSION_RECEIVE_WINDOW.into())
        .datagram_receive_buffer_size(Some(HOST_DATAGRAM_BUFFER));
    config
}

/// A client's transport configuration ([`transport_config`]): the host opens no stream
/// toward a client, so a client allows none.
pub fn client_transport_config(
    idle_timeout: Duration,
    keep_alive: Duration,
) -> quinn::TransportConfig {
    let mut config = transport_config(idle_timeout, keep_alive);
    config
        .max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams(0u32.into());
    config
}

/// Why a QUIC handshake was refused at the TLS level, as read from the connection error
/// on either side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// (Client side) the host's leaf certificate does not have the pinned SHA-256.
    FingerprintMismatch {
        /// The TLS error text, which names both fingerprints.
        detail: String,
    },
    /// (Client side) the host's certificate failed CA-chain verification: unknown issuer,
    /// server name not in the certificate, expired, bad handshake signature, ...
    UntrustedCertificate {
        /// The TLS error text.
        detail: String,
    },
    /// (Host side) the client aborted the handshake because it does not trust the host's
    /// certificate (wrong pinned fingerprint or failed chain verification).
    CertificateRejectedByPeer {
        /// The reason the client sent, if any.
        detail: String,
    },
    /// No common ALPN protocol: one side does not speak `theta/1` (or offered no ALPN).
    AlpnMismatch {
        /// The TLS error text.
        detail: String,
    },
}

impl fmt::Display for HandshakeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FingerprintMismatch { detail } => {
                write!(f, "refused: the host's certificate does not match the pinned fingerprint ({detail})")
            }
            Self::UntrustedCertificate { detail } => {
                write!(
                    f,
                    "refused: the host's certificate is not trusted ({detail})"
                )
            }
            Self::CertificateRejectedByPeer { detail } => {
                write!(
                    f,
                    "refused: the client does not trust this host's certificate ({detail})"
                )
            }
            Self::AlpnMismatch { detail } => write!(
                f,
                "refused: no common application protocol, both sides must speak theta/1 ({detail})"
            ),
        }
    }
}

/// Classifies a handshake failure: `Some` when `err` is a TLS certificate or ALPN refusal,
/// `None` for anything else (timeouts, resets, application closes, ...).
///
/// What each side sees, with quinn 0.11 / rustls 0.23:
/// - wrong pinned fingerprint, client: `ConnectionError::TransportError` with code
///   `crypto(46)` (`certificate_unknown`) and a reason containing
///   "certificate fingerprint mismatch"; host: `ConnectionError::ConnectionClosed` with
///   the same code and reason.
/// - wrong ALPN or none, client: `ConnectionError::ConnectionClosed` with code
///   `crypto(120)` (`no_application_protocol`, QUIC 0x178); host: `TransportError` with
///   that code.
pub fn handshake_refusal(err: &quinn::ConnectionError) -> Option<HandshakeRefusal> {
    let (code, detail, local) = match err {
        quinn::ConnectionError::TransportError(e) => (e.code, e.reason.clone(), true),
        quinn::ConnectionError::ConnectionClosed(close) => (
            close.error_code,
            String::from_utf8_lossy(&close.reason).into_owned(),
            false,
        ),
        _ => return None,
    };
    let raw = u64::from(code);
    if !(0x100..0x200).contains(&raw) {
        return None;
    }
    let alert = (raw & 0xff) as u8;
    match alert {
        ALERT_NO_APPLICATION_PROTOCOL => Some(HandshakeRefusal::AlpnMismatch { detail }),
        ALERT_BAD_CERTIFICATE
        | ALERT_UNSUPPORTED_CERTIFICATE
        | ALERT_CERTIFICATE_REVOKED
        | ALERT_CERTIFICATE_EXPIRED
        | ALERT_CERTIFICATE_UNKNOWN
        | ALERT_UNKNOWN_CA
        | ALERT_DECRYPT_ERROR => Some(if !local {
            HandshakeRefusal::CertificateRejectedByPeer { detail }
        } else if detail.contains(FINGERPRINT_MISMATCH_TEXT) {
            HandshakeRefusal::FingerprintMismatch { detail }
        } else {
            HandshakeRefusal::UntrustedCertificate { detail }
        }),
        _ => None,
    }
}

/// PEM armour: base64 in 64-column lines between BEGIN/END lines.
fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> shift) & 0x3f) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(5);

    fn transport() -> Arc<quinn::TransportConfig> {
        Arc::new(transport_config(
            Duration::from_secs(5),
            Duration::from_secs(1),
        ))
    }

    fn localhost_identity() -> HostIdentity {
        match HostIdentity::self_signed(&[]) {
            Ok(id) => id,
            Err(e) => panic!("self-signed identity: {e}"),
        }
    }

    /// What the host task saw: the connection error, if the handshake failed.
    type HostOutcome = Result<(), quinn::ConnectionError>;

    /// A host on 127.0.0.1 that accepts one connection and echoes one bi stream.
    fn start_host(
        config: quinn::ServerConfig,
    ) -> (
        quinn::Endpoint,
        SocketAddr,
        tokio::task::JoinHandle<HostOutcome>,
    ) {
        let endpoint = quinn::Endpoint::server(config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind host endpoint");
        let addr = endpoint.local_addr().expect("host address");
        let ep = endpoint.clone();
        let task = tokio::spawn(async move {
            let incoming = ep.accept().await.expect("endpoint open");
            let conn = incoming.await?;
            // Echo one stream, if the client opens one.
            if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let data = recv.read_to_end(1 << 16).await.expect("read request");
                send.write_all(&data).await.expect("write reply");
                send.finish().expect("finish reply");
                let _ = conn.closed().await;
            }
            Ok(())
        });
        (endpoint, addr, task)
    }

    fn client_endpoint(config: quinn::ClientConfig) -> quinn::Endpoint {
        let mut ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind client endpoint");
        ep.set_default_client_config(config);
        ep
    }

    async fn shut(endpoints: &[&quinn::Endpoint]) {
        for ep in endpoints {
            ep.close(0u32.into(), b"test done");
        }
        for ep in endpoints {
            let _ = timeout(LIMIT, ep.wait_idle()).await;
        }
    }

    /// Connects with `client`, to `server_name`, and exchanges one echo; returns the
    /// client's and the host's outcome.
    async fn attempt(
        host: quinn::ServerConfig,
        client: quinn::ClientConfig,
        server_name: &str,
    ) -> (Result<(), quinn::ConnectionError>, HostOutcome) {
        let (host_ep, addr, host_task) = start_host(host);
        let client_ep = client_endpoint(client);
        let client_result = async {
            let conn = client_ep
                .connect(addr, server_name)
                .expect("connect parameters")
                .await?;
            assert_eq!(
                conn.handshake_data()
                    .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                    .and_then(|d| d.protocol),
                Some(ALPN.to_vec())
            );
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(b"hello theta").await.expect("write");
            send.finish().expect("finish");
            let reply = recv.read_to_end(1 << 16).await.expect("read reply");
            assert_eq!(reply, b"hello theta");
            conn.close(0u32.into(), b"bye");
            Ok(())
        }
        .await;
        let host_result = timeout(LIMIT, host_task)
            .await
            .expect("host task finished")
            .expect("host task did not panic");
        shut(&[&client_ep, &host_ep]).await;
        (client_result, host_result)
    }

    fn pinned_client(fp: Fingerprint) -> quinn::ClientConfig {
        client_config(&ServerTrust::Fingerprint(fp), transport()).expect("client config")
    }

    fn host_config(id: &HostIdentity) -> quinn::ServerConfig {
        server_config(id, transport()).expect("server config")
    }

    /// A CA named `ca_name` and a leaf for "localhost" signed by it, as
    /// (ca_der, chain_pem, key_pem).
    fn ca_and_leaf(ca_name: &str) -> (CertificateDer<'static>, String, String) {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");

        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf cert");
        let chain_pem = format!("{}{}", leaf.pem(), ca.pem());
        (ca.der().clone(), chain_pem, leaf_key.serialize_pem())
    }

    #[tokio::test]
    async fn pinned_fingerprint_connects_and_exchanges_bytes() {
        timeout(LIMIT * 2, async {
            let id = localhost_identity();
            let (client, host) = attempt(
                host_config(&id),
                pinned_client(id.fingerprint()),
                "localhost",
            )
            .await;
            client.expect("client connected and echoed");
            host.expect("host accepted");
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn pinned_fingerprint_ignores_server_name() {
        timeout(LIMIT * 2, async {
            let id = localhost_identity();
            let (client, host) = attempt(
                host_config(&id),
                pinned_client(id.fingerprint()),
                "not-the-cert-name.example",
            )
            .await;
            client.expect("name is not checked when pinning");
            host.expect("host accepted");
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn wrong_fingerprint_is_refused_with_fingerprint_error() {
        timeout(LIMIT * 2, async {
            let id = localhost_identity();
            let other = localhost_identity();
            let (client, host) = attempt(
                host_config(&id),
                pinned_client(other.fingerprint()),
                "localhost",
            )
            .await;
            let err = client.expect_err("wrong fingerprint must fail");
            let text = err.to_string();
            eprintln!("client sees: {err:?}\n  display: {text}");
            assert!(text.contains("fingerprint"), "{text}");
            assert!(text.contains(&other.fingerprint().to_hex()), "{text}");
            assert!(text.contains(&id.fingerprint().to_hex()), "{text}");
            match &err {
                quinn::ConnectionError::TransportError(e) => {
                    assert_eq!(e.code, quinn::TransportErrorCode::crypto(46));
                }
                other => panic!("unexpected client error {other:?}"),
            }
            assert!(matches!(
                handshake_refusal(&err),
                Some(HandshakeRefusal::FingerprintMismatch { .. })
            ));
            let host_err = host.expect_err("host sees the refusal");
            eprintln!("host sees: {host_err:?}\n  display: {host_err}");
            assert!(matches!(
                handshake_refusal(&host_err),
                Some(HandshakeRefusal::CertificateRejectedByPeer { .. })
            ));
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn wrong_alpn_is_refused_by_host() {
        timeout(LIMIT * 2, async {
            let id = localhost_identity();
            let mut raw = rustls_client_config(&ServerTrust::Fingerprint(id.fingerprint()))
                .expect("raw client config");
            raw.alpn_protocols = vec![b"other/1".to_vec()];
            let quic = QuicClientConfig::try_from(raw).expect("quic client config");
            let mut client = quinn::ClientConfig::new(Arc::new(quic));
            client.transport_config(transport());
            let (client, host) = attempt(host_config(&id), client, "localhost").await;
            let err = client.expect_err("wrong ALPN must fail");
            eprintln!("client sees: {err:?}\n  display: {err}");
            match &err {
                quinn::ConnectionError::ConnectionClosed(close) => {
                    assert_eq!(close.error_code, quinn::TransportErrorCode::crypto(120));
                }
                other => panic!("unexpected client error {other:?}"),
            }
            let refusal = handshake_refusal(&err);
            assert!(
                matches!(refusal, Some(HandshakeRefusal::AlpnMismatch { .. })),
                "{refusal:?}"
            );
            let text = refusal.map(|r| r.to_string()).unwrap_or_default();
            assert!(text.contains("application protocol") && text.contains("theta/1"));
            let host_err = host.expect_err("host refused");
            eprintln!("host sees: {host_err:?}\n  display: {host_err}");
            assert!(matches!(
                handshake_refusal(&host_err),
                Some(HandshakeRefusal::AlpnMismatch { .. })
            ));
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn missing_alpn_is_refused_by_host() {
        timeout(LIMIT * 2, async {
            let id = localhost_identity();
            let mut raw = rustls_client_config(&ServerTrust::Fingerprint(id.fingerprint()))
                .expect("raw client config");
            raw.alpn_protocols.clear();
            let quic = QuicClientConfig::try_from(raw).expect("quic client config");
            let (client, _host) = attempt(
                host_config(&id),
                quinn::ClientConfig::new(Arc::new(quic)),
                "localhost",
            )
            .await;
            let err = client.expect_err("no ALPN must fail");
            assert!(matches!(
                handshake_refusal(&err),
                Some(HandshakeRefusal::AlpnMismatch { .. })
            ));
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn ca_chain_verification_accepts_signed_leaf() {
        timeout(LIMIT * 2, async {
            let (ca_der, chain_pem, key_pem) = ca_and_leaf("theta test CA");
            let id = HostIdentity::from_pem(&chain_pem, &key_pem).expect("identity from PEM");
            assert_eq!(id.cert_chain().len(), 2);
            let client = client_config(&ServerTrust::CaRoots(vec![ca_der]), transport())
                .expect("client config");
            let (client, host) = attempt(host_config(&id), client, "localhost").await;
            client.expect("CA-verified connection");
            host.expect("host accepted");
        })
        .await
        .expect("test timed out");
    }

    /// Connects a host with a leaf of "theta test CA" to a client trusting only
    /// `trusted_ca`; returns the client's error.
    async fn refused_by_ca(trusted_ca: CertificateDer<'static>) -> quinn::ConnectionError {
        let (_, chain_pem, key_pem) = ca_and_leaf("theta test CA");
        let id = HostIdentity::from_pem(&chain_pem, &key_pem).expect("identity from PEM");
        let client = client_config(&ServerTrust::CaRoots(vec![trusted_ca]), transport())
            .expect("client config");
        let (client, host) = attempt(host_config(&id), client, "localhost").await;
        let err = client.expect_err("untrusted chain must fail");
        eprintln!("client sees: {err:?}\n  display: {err}");
        assert!(host.is_err());
        match handshake_refusal(&err) {
            Some(HandshakeRefusal::UntrustedCertificate { .. }) => {}
            other => panic!("unexpected classification {other:?}"),
        }
        err
    }

    #[tokio::test]
    async fn ca_chain_verification_rejects_unrelated_ca() {
        timeout(LIMIT * 2, async {
            let (unrelated_ca, _, _) = ca_and_leaf("some other CA");
            let err = refused_by_ca(unrelated_ca).await;
            assert!(err.to_string().contains("UnknownIssuer"), "{err}");
            assert!(matches!(&err, quinn::ConnectionError::TransportError(e)
                if e.code == quinn::TransportErrorCode::crypto(ALERT_UNKNOWN_CA)));
        })
        .await
        .expect("test timed out");
    }

    /// An unrelated CA with the same name as the real issuer: webpki finds it by name and
    /// the leaf's signature does not verify.
    #[tokio::test]
    async fn ca_chain_verification_rejects_same_named_impostor_ca() {
        timeout(LIMIT * 2, async {
            let (impostor_ca, _, _) = ca_and_leaf("theta test CA");
            let err = refused_by_ca(impostor_ca).await;
            assert!(err.to_string().contains("BadSignature"), "{err}");
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn ca_chain_verification_checks_server_name() {
        timeout(LIMIT * 2, async {
            let (ca_der, chain_pem, key_pem) = ca_and_leaf("theta test CA");
            let id = HostIdentity::from_pem(&chain_pem, &key_pem).expect("identity from PEM");
            let client = client_config(&ServerTrust::CaRoots(vec![ca_der]), transport())
                .expect("client config");
            let (client, _) = attempt(host_config(&id), client, "elsewhere.example").await;
            let err = client.expect_err("wrong name must fail");
            eprintln!("client sees: {err}");
            assert!(matches!(
                handshake_refusal(&err),
                Some(HandshakeRefusal::UntrustedCertificate { .. })
            ));
        })
        .await
        .expect("test timed out");
    }

    /// Serves a fixed certified key without checking that the key matches the certificate.
    #[derive(Debug)]
    struct Impostor(Arc<rustls::sign::CertifiedKey>);

    impl rustls::server::ResolvesServerCert for Impostor {
        fn resolve(
            &self,
            _hello: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    /// A host presenting the pinned certificate without its private key cannot finish the
    /// handshake: the pinned verifier still checks the CertificateVerify signature.
    #[tokio::test]
    async fn pinned_certificate_without_its_key_is_refused() {
        timeout(LIMIT * 2, async {
            let genuine = localhost_identity();
            let impostor = localhost_identity();
            let signing_key = provider()
                .key_provider
                .load_private_key(impostor.key.clone_key())
                .expect("impostor key");
            let certified =
                rustls::sign::CertifiedKey::new(genuine.cert_chain.clone(), signing_key);
            let mut raw = rustls::ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("tls13")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Impostor(Arc::new(certified))));
            raw.alpn_protocols = vec![ALPN.to_vec()];
            let host = quinn::ServerConfig::with_crypto(Arc::new(
                QuicServerConfig::try_from(raw).expect("quic server config"),
            ));
            let (client, _) =
                attempt(host, pinned_client(genuine.fingerprint()), "localhost").await;
            let err = client.expect_err("a stolen certificate without its key must fail");
            eprintln!("client sees: {err}");
            match &err {
                quinn::ConnectionError::TransportError(e) => {
                    assert_eq!(
                        e.code,
                        quinn::TransportErrorCode::crypto(ALERT_DECRYPT_ERROR)
                    );
                }
                other => panic!("unexpected client error {other:?}"),
            }
            assert!(matches!(
                handshake_refusal(&err),
                Some(HandshakeRefusal::UntrustedCertificate { .. })
            ));
        })
        .await
        .expect("test timed out");
    }

    #[test]
    fn fingerprint_hex_round_trip() {
        let id = localhost_identity();
        let fp = id.fingerprint();
        let hex = fp.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(fp.to_string(), hex);
        assert_eq!(Fingerprint::from_hex(&hex).expect("lower"), fp);
        assert_eq!(
            Fingerprint::from_hex(&hex.to_uppercase()).expect("upper"),
            fp
        );
        let colons =
            fp.0.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
        assert_eq!(Fingerprint::from_hex(&colons).expect("colons"), fp);
        assert_eq!(
            format!("  {hex}\n")
                .parse::<Fingerprint>()
                .expect("trimmed"),
            fp
        );
        // The fingerprint is SHA-256 of the leaf DER.
        let expected = ring::digest::digest(&ring::digest::SHA256, id.cert_chain()[0].as_ref());
        assert_eq!(&fp.0[..], expected.as_ref());
    }

    #[test]
    fn bad_fingerprint_hex_is_rejected() {
        let good = "ab".repeat(32);
        for bad in [
            String::new(),
            "ab".repeat(31),
            "ab".repeat(33),
            format!("{}a", "ab".repeat(31)),
            format!("{}zz", "ab".repeat(31)),
            format!("{}é", "ab".repeat(31)),
            format!("{good}:"),
            format!(":{good}"),
            "ab:".repeat(32),
            vec!["abc"; 32].join(":"),
            vec!["ab"; 31].join(":"),
        ] {
            let err = Fingerprint::from_hex(&bad).expect_err(&bad);
            assert!(matches!(err, TlsError::BadFingerprint(_)), "{bad}: {err}");
            assert!(err
                .to_string()
                .starts_with("invalid certificate fingerprint"));
        }
        assert!(Fingerprint::from_hex(&good).is_ok());
    }

    #[test]
    fn self_signed_defaults_to_localhost_and_takes_names() {
        let id = localhost_identity();
        assert_eq!(id.cert_chain().len(), 1);
        let other = HostIdentity::self_signed(&["theta.example".to_owned(), "10.0.0.1".to_owned()])
            .expect("named identity");
        assert_ne!(id.fingerprint(), other.fingerprint());
        assert!(format!("{other:?}").contains(&other.fingerprint().to_hex()));
    }

    #[test]
    fn pem_round_trip_keeps_fingerprint() {
        let id = localhost_identity();
        let (chain, key) = id.to_pem();
        assert!(chain.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = HostIdentity::from_pem(&chain, &key).expect("reload");
        assert_eq!(back.fingerprint(), id.fingerprint());
        assert_eq!(back.cert_chain(), id.cert_chain());
        assert_eq!(back.clone().fingerprint(), id.fingerprint());
    }

    #[test]
    fn from_pem_rejects_bad_input() {
        let (_, chain, key) = ca_and_leaf("theta test CA");
        let (_, _, other_key) = ca_and_leaf("theta test CA");
        assert!(matches!(
            HostIdentity::from_pem("", &key),
            Err(TlsError::NoCertificate)
        ));
        assert!(matches!(
            HostIdentity::from_pem(&chain, ""),
            Err(TlsError::Pem {
                what: "private key",
                ..
            })
        ));
        assert!(matches!(
            HostIdentity::from_pem(
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                &key
            ),
            Err(TlsError::Pem {
                what: "certificate chain",
                ..
            })
        ));
        let mismatch = HostIdentity::from_pem(&chain, &other_key).expect_err("wrong key");
        assert!(matches!(mismatch, TlsError::KeyPair(_)), "{mismatch}");
    }

    #[test]
    fn client_config_rejects_empty_or_invalid_roots() {
        assert!(matches!(
            client_config(&ServerTrust::CaRoots(Vec::new()), transport()),
            Err(TlsError::NoRoots)
        ));
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(matches!(
            client_config(&ServerTrust::CaRoots(vec![garbage]), transport()),
            Err(TlsError::InvalidRoot(_))
        ));
    }

    #[test]
    fn configs_offer_theta_alpn_without_0rtt() {
        let id = localhost_identity();
        let server = rustls_server_config(&id).expect("server");
        assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);
        assert_eq!(server.max_early_data_size, 0);
        let client =
            rustls_client_config(&ServerTrust::Fingerprint(id.fingerprint())).expect("client");
        assert_eq!(client.alpn_protocols, vec![ALPN.to_vec()]);
        assert!(!client.enable_early_data);
    }

    #[test]
    fn transport_config_edge_values_do_not_panic() {
        let _ = transport_config(Duration::ZERO, Duration::ZERO);
        let _ = transport_config(Duration::MAX, Duration::from_secs(1));
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(hex_encode(&[0x00, 0xff, 0x1a]), "00ff1a");
        assert_eq!(hex_decode("00FF1a"), Ok(vec![0x00, 0xff, 0x1a]));
        assert!(hex_decode("abc").is_err());
        assert!(hex_decode("zz").is_err());
    }

    #[test]
    fn pem_encode_matches_known_base64() {
        // RFC 4648 test vectors, padded forms included.
        for (input, b64) in [
            (&b"f"[..], "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(
                pem_encode("X", input),
                format!("-----BEGIN X-----\n{b64}\n-----END X-----\n")
            );
        }
    }
}
