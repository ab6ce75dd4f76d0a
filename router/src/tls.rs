//! TLS for HTTPS listeners: certificates (generated or loaded from PEM files), SNI-based
//! certificate selection and the rustls server configuration.
//!
//! Everything here uses rustls' *ring* provider explicitly: the workspace links ring only, and
//! rustls' default builders panic when they cannot find their default (aws-lc-rs) provider.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, ServerConfig, SignatureScheme};

/// Names every generated certificate covers besides the configured ones, so that
/// `curl https://localhost:PORT` and `https://127.0.0.1:PORT` also validate.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// ALPN protocols offered by HTTPS listeners, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate could not be generated, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused the parameters (for example a host name that is not a valid DNS name).
    #[error("cannot generate a self-signed certificate for {hosts:?}: {source}")]
    Generate {
        hosts: Vec<String>,
        #[source]
        source: rcgen::Error,
    },
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A PEM file was readable but held no certificate.
    #[error("{path} contains no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")")]
    NoCertificate { path: PathBuf },
    /// The private key is of an unsupported type or does not belong to the certificate.
    #[error("private key {key_path} does not fit certificate {cert_path}: {reason}")]
    KeyMismatch {
        cert_path: PathBuf,
        key_path: PathBuf,
        reason: String,
    },
    /// The private key could not be turned into a rustls signing key.
    #[error("unusable private key: {0}")]
    Key(#[source] rustls::Error),
    /// Writing a certificate file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// rustls rejected the server configuration.
    #[error("invalid TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// A certificate generated at start-up, with its PEM forms kept so that it can be written out
/// for clients (`curl --cacert FILE`).
#[derive(Debug, Clone)]
pub struct GeneratedCert {
    /// The certificate and signing key, ready for [`SniResolver`].
    pub certified_key: Arc<CertifiedKey>,
    /// The certificate in PEM form; it is its own trust anchor.
    pub cert_pem: String,
    /// The private key in PKCS#8 PEM form.
    pub key_pem: String,
}

impl GeneratedCert {
    /// Writes the certificate (not the key) to `path`, so that clients can trust it with
    /// `curl --cacert path` or `SSL_CERT_FILE=path`.
    pub fn write_cert_pem(&self, path: &Path) -> Result<(), TlsError> {
        std::fs::write(path, &self.cert_pem).map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The crypto provider used for every TLS object in Trellis.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Generates a self-signed certificate valid for `hosts` plus `localhost`, `127.0.0.1` and
/// `::1`. Strings that parse as IP addresses become IP SANs, all others DNS SANs.
///
/// The certificate is a self-signed *end-entity* certificate without a CA flag: OpenSSL
/// (`curl --cacert`) accepts such a certificate as its own trust anchor, and so does
/// webpki (rustls clients), which would reject a CA certificate used as a server certificate.
pub fn self_signed(hosts: &[String]) -> Result<GeneratedCert, TlsError> {
    let names = san_list(hosts);
    let generate_error = |source| TlsError::Generate {
        hosts: names.clone(),
        source,
    };
    let mut params = CertificateParams::new(names.clone()).map_err(generate_error)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.distinguished_name = distinguished_name(&names);
    let key_pair = KeyPair::generate().map_err(generate_error)?;
    let cert = params.self_signed(&key_pair).map_err(generate_error)?;

    let key_der = PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let signing_key = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(TlsError::Key)?;
    let certified_key = CertifiedKey::new(vec![cert.der().clone()], signing_key);
    Ok(GeneratedCert {
        certified_key: Arc::new(certified_key),
        cert_pem: cert.pem(),
        key_pem: key_pair.serialize_pem(),
    })
}

/// The configured host names followed by the loopback names, without duplicates or empties.
fn san_list(hosts: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let all = hosts
        .iter()
        .map(String::as_str)
        .chain(LOOPBACK_NAMES)
        .map(|name| name.trim().trim_end_matches('.').to_ascii_lowercase());
    for name in all {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A subject naming the first host, so that tools listing certificates show something useful.
fn distinguished_name(names: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Trellis (self-signed)");
    if let Some(first) = names.first() {
        dn.push(DnType::CommonName, first.as_str());
    }
    dn
}

/// Loads a certificate chain and its private key from PEM files (as given in the config).
pub fn load_pem(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let pem_error = |what, path: &Path, err: rustls::pki_types::pem::Error| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: err.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| pem_error("certificates", cert_path, err))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|err| pem_error("a private key", key_path, err))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|err| TlsError::KeyMismatch {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            reason: err.to_string(),
        })
}

/// Picks the certificate for a TLS connection from the SNI server name.
///
/// Lookups are case-insensitive. A `*.example.com` entry matches exactly one extra label
/// (`a.example.com`, not `example.com` nor `a.b.example.com`); exact entries win over wildcards.
/// Clients that send no SNI (or an unknown name, or connect by IP address) get the default
/// certificate, so that `curl -k https://127.0.0.1:PORT` still completes a handshake.
#[derive(Debug, Clone)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`, e.g. `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// A resolver that answers every name with `default` until names are added.
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        SniResolver {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
        }
    }

    /// Serves `key` for `name`, which may be a `*.domain` wildcard. A later entry for the same
    /// name replaces an earlier one.
    pub fn add(&mut self, name: &str, key: Arc<CertifiedKey>) {
        let name = normalize(name);
        match name.strip_prefix("*.") {
            Some(suffix) => self.wildcard.insert(suffix.to_owned(), key),
            None => self.exact.insert(name, key),
        };
    }

    /// Serves `key` also for the DNS names its certificate holds (a `*.example.com` name
    /// covering every `<label>.example.com`, one level deep), where no name added before
    /// chose another certificate. So a client naming a host under a listener's wildcard
    /// certificate gets that certificate, as from Lattice, rather than the port's default
    /// (whose names it would not trust); the routing table then tells whether a service
    /// answers to the host. Names the certificate's own parser cannot read are skipped.
    pub fn add_certificate_names(&mut self, key: &Arc<CertifiedKey>) {
        let Some(der) = key.cert.first() else {
            return;
        };
        let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
            return;
        };
        for name in cert.valid_dns_names() {
            let name = normalize(name);
            let map = match name.strip_prefix("*.") {
                Some(suffix) => self.wildcard.entry(suffix.to_owned()),
                None => self.exact.entry(name),
            };
            map.or_insert_with(|| Arc::clone(key));
        }
    }

    /// The certificate for `server_name` (`None`: the client sent no SNI).
    pub fn lookup(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        server_name
            .and_then(|name| self.find(&normalize(name)))
            .unwrap_or_else(|| Arc::clone(&self.default))
    }

    /// Exact match first, then the wildcard for the name's parent domain.
    fn find(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(key) = self.exact.get(name) {
            return Some(Arc::clone(key));
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.lookup(client_hello.server_name()))
    }
}

/// Lower-cases a host name and drops a trailing root dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The rustls configuration for HTTPS listeners: TLS 1.3 and 1.2, certificates chosen by
/// `resolver`, ALPN `h2` then `http/1.1` (hyper-util's auto server then speaks whichever the
/// client picked).
pub fn server_config(resolver: Arc<SniResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|proto| proto.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The client side of Trellis talking to one of its own listeners (the console's send form):
/// any certificate accepted, since a listener's may be the self-signed one made at start-up,
/// and HTTP/1.1 offered by ALPN.
pub fn loopback_client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider())))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client-side verifier that accepts any server certificate, as VPC Lattice does towards
/// its targets, while still checking that the handshake is signed by the key in the presented
/// certificate. Used by the HTTP invoker and by tests.
#[derive(Debug)]
pub struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl AcceptAnyCertificate {
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyCertificate(provider)
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::SocketAddr;

    use rustls::{ClientConfig, RootCertStore};
    use tokio::net::{TcpListener, TcpStream};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    /// Accepts TLS connections forever, completing handshakes and then dropping them.
    async fn tls_server(config: Arc<ServerConfig>) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        Ok(addr)
    }

    /// A client that trusts exactly `roots`.
    fn trusting(roots: &[&GeneratedCert]) -> Result<ClientConfig, Box<dyn std::error::Error>> {
        let mut store = RootCertStore::empty();
        for cert in roots {
            store.add(cert.certified_key.cert[0].clone())?;
        }
        Ok(ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(store)
            .with_no_client_auth())
    }

    /// Connects with `sni` (or none) and returns the certificate the server presented.
    async fn presented(
        addr: SocketAddr,
        mut config: ClientConfig,
        sni: Option<&str>,
    ) -> Result<CertificateDer<'static>, Box<dyn std::error::Error>> {
        config.enable_sni = sni.is_some();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = ServerName::try_from(sni.unwrap_or("localhost").to_owned())?;
        let tcp = TcpStream::connect(addr).await?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
        let certs = conn.peer_certificates().ok_or("no peer certificate")?;
        Ok(certs[0].clone())
    }

    #[test]
    fn san_list_adds_loopback_names_once() {
        let names = san_list(&hosts(&["Svc.Example.com.", "localhost", "10.0.0.1"]));
        assert_eq!(
            names,
            [
                "svc.example.com",
                "localhost",
                "10.0.0.1",
                "127.0.0.1",
                "::1"
            ]
        );
    }

    #[test]
    fn resolver_matches_exact_wildcard_and_default() -> TestResult {
        let default = self_signed(&[])?.certified_key;
        let exact = self_signed(&hosts(&["a.example.com"]))?.certified_key;
        let wild = self_signed(&hosts(&["*.example.com"]))?.certified_key;
        let mut resolver = SniResolver::new(Arc::clone(&default));
        resolver.add("A.Example.com", Arc::clone(&exact));
        resolver.add("*.example.com", Arc::clone(&wild));

        assert!(Arc::ptr_eq(
            &resolver.lookup(Some("a.EXAMPLE.com.")),
            &exact
        ));
        assert!(Arc::ptr_eq(&resolver.lookup(Some("b.example.com")), &wild));
        assert!(Arc::ptr_eq(
            &resolver.lookup(Some("x.b.example.com")),
            &default
        ));
        assert!(Arc::ptr_eq(&resolver.lookup(Some("example.com")), &default));
        assert!(Arc::ptr_eq(&resolver.lookup(None), &default));
        Ok(())
    }

    /// A configured certificate's own names serve it, its wildcard one level deep, without
    /// taking a name another certificate was chosen for.
    #[test]
    fn certificate_names_serve_their_certificate_where_no_other_was_chosen() -> TestResult {
        let default = self_signed(&[])?.certified_key;
        let service = self_signed(&hosts(&["taken.example.com"]))?.certified_key;
        let wild = self_signed(&hosts(&["*.example.com", "apex.example.org"]))?.certified_key;
        let mut resolver = SniResolver::new(Arc::clone(&default));
        resolver.add("taken.example.com", Arc::clone(&service));
        resolver.add_certificate_names(&wild);

        assert!(Arc::ptr_eq(
            &resolver.lookup(Some("parking.example.com")),
            &wild
        ));
        assert!(Arc::ptr_eq(
            &resolver.lookup(Some("apex.example.org")),
            &wild
        ));
        assert!(Arc::ptr_eq(
            &resolver.lookup(Some("taken.example.com")),
            &service
        ));
        assert!(Arc::ptr_eq(
            &resolver.lookup(Some("a.b.example.com")),
            &default
        ));
        assert!(Arc::ptr_eq(&resolver.lookup(Some("example.com")), &default));
        Ok(())
    }

    #[tokio::test]
    async fn handshake_picks_certificate_by_sni() -> TestResult {
        let default = self_signed(&hosts(&["default.test"]))?;
        let one = self_signed(&hosts(&["one.test"]))?;
        let wild = self_signed(&hosts(&["*.wild.test"]))?;
        let mut resolver = SniResolver::new(Arc::clone(&default.certified_key));
        resolver.add("one.test", Arc::clone(&one.certified_key));
        resolver.add("*.wild.test", Arc::clone(&wild.certified_key));
        let addr = tls_server(server_config(Arc::new(resolver))?).await?;

        let got = presented(addr, trusting(&[&one])?, Some("ONE.test")).await?;
        assert_eq!(got, one.certified_key.cert[0]);
        let got = presented(addr, trusting(&[&wild])?, Some("x.wild.test")).await?;
        assert_eq!(got, wild.certified_key.cert[0]);
        // An unknown name: `localhost` is not in the resolver, so the default (which covers
        // `localhost`) is served.
        let got = presented(addr, trusting(&[&default])?, Some("localhost")).await?;
        assert_eq!(got, default.certified_key.cert[0]);
        Ok(())
    }

    #[tokio::test]
    async fn handshake_without_sni_gets_default() -> TestResult {
        let default = self_signed(&hosts(&["default.test"]))?;
        let one = self_signed(&hosts(&["one.test"]))?;
        let mut resolver = SniResolver::new(Arc::clone(&default.certified_key));
        resolver.add("one.test", Arc::clone(&one.certified_key));
        let addr = tls_server(server_config(Arc::new(resolver))?).await?;

        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider())))
            .with_no_client_auth();
        let got = presented(addr, config, None).await?;
        assert_eq!(got, default.certified_key.cert[0]);
        Ok(())
    }

    #[tokio::test]
    async fn load_pem_round_trips_and_names_missing_file() -> TestResult {
        let dir = std::env::temp_dir().join(format!("trellis-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let generated = self_signed(&hosts(&["pem.test"]))?;
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        generated.write_cert_pem(&cert_path)?;
        std::fs::write(&key_path, &generated.key_pem)?;

        let loaded = load_pem(&cert_path, &key_path)?;
        assert_eq!(loaded.cert, generated.certified_key.cert);

        let missing = dir.join("missing.pem");
        let err = load_pem(&missing, &key_path)
            .err()
            .ok_or("expected an error")?;
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = load_pem(&key_path, &key_path)
            .err()
            .ok_or("expected an error")?;
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let other = self_signed(&[])?;
        std::fs::write(&key_path, &other.key_pem)?;
        let err = load_pem(&cert_path, &key_path)
            .err()
            .ok_or("expected an error")?;
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Serves HTTP/1.1 and HTTP/2 over TLS, answering every request with `hello`.
    async fn https_server(config: Arc<ServerConfig>) -> std::io::Result<SocketAddr> {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            crate::target::full("hello"),
                        ))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(addr)
    }

    /// The generated certificate must work as `curl --cacert` trust anchor (OpenSSL), for the
    /// configured name, `localhost` and `127.0.0.1`. Skipped when curl is not installed.
    #[tokio::test]
    async fn curl_trusts_generated_certificate() -> TestResult {
        if std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("curl not installed: skipping");
            return Ok(());
        }
        let generated = self_signed(&hosts(&["svc.trellis.localhost"]))?;
        let dir = std::env::temp_dir().join(format!("trellis-curl-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ca = dir.join("ca.pem");
        generated.write_cert_pem(&ca)?;
        let resolver = SniResolver::new(Arc::clone(&generated.certified_key));
        let addr = https_server(server_config(Arc::new(resolver))?).await?;
        let port = addr.port();

        for (host, extra) in [
            ("svc.trellis.localhost", vec!["--http1.1"]),
            ("svc.trellis.localhost", vec![]),
            ("localhost", vec![]),
            ("127.0.0.1", vec![]),
        ] {
            let resolve = format!("{host}:{port}:127.0.0.1");
            let url = format!("https://{host}:{port}/");
            let output = tokio::process::Command::new("curl")
                .args(["-sS", "--max-time", "10", "--cacert"])
                .arg(&ca)
                .args(["--resolve", &resolve])
                .args(extra)
                .arg(&url)
                .output()
                .await?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "curl {url}: {stderr}");
            assert_eq!(output.stdout, b"hello");
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
