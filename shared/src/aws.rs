//! The one AWS SDK configuration the functions' AWS clients are built from (Secrets Manager at
//! cold start, SQS on first use): the SDK's default chain for region, credentials and
//! endpoints, over an HTTPS client whose trust is Amazon Trust Services' root CAs, compiled in.
//!
//! Why not the platform's roots, the SDK's default: loading them reads and parses the system
//! bundle (about 140 certificates on Amazon Linux 2023) at every cold start, before the first
//! request, which on a 256 MB function's CPU share costs tens of milliseconds (BENCHMARKS.md,
//! "Cold start over HTTPS"). Every AWS service endpoint presents a certificate chaining to
//! these roots (<https://www.amazontrust.com/repository/>), so trusting only them also narrows
//! who could impersonate Secrets Manager to a function. Where a network needs another CA (a
//! TLS-inspecting proxy, an emulator), `AWS_CA_BUNDLE`, the AWS SDKs' standard setting, names a
//! PEM bundle that replaces them (README, "TLS and entropy").

use std::path::{Path, PathBuf};

use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The AWS SDKs' variable naming a PEM bundle to trust instead of the compiled-in roots.
pub const CA_BUNDLE_ENV: &str = "AWS_CA_BUNDLE";

/// Amazon Root CA 1 to 4 and Starfield Services Root CA G2 (the cross-signer of Amazon Root CA
/// 1), each with its SHA-256 fingerprint as published at <https://www.amazontrust.com/repository/>.
const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("aws/amazon-trust-services-roots.pem");

/// Why the AWS client configuration could not be built. Names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    #[error("{CA_BUNDLE_ENV} names {path}, which cannot be read")]
    CaBundleUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{CA_BUNDLE_ENV} names {path}, which holds no PEM certificate")]
    CaBundleEmpty { path: PathBuf },
    #[error("{CA_BUNDLE_ENV} names {path}, whose certificate number {number} is not a usable root: {problem}")]
    CaBundleInvalid { path: PathBuf, number: usize, problem: String },
    #[error("the AWS HTTPS client cannot be built")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
}

static SDK_CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> = tokio::sync::OnceCell::const_new();

/// The process's AWS SDK configuration, built once: the default chain over
/// [`https_client`] (credentials from the environment when it holds them, as on Lambda). An
/// error is not kept, so a later call tries again.
pub async fn sdk_config() -> Result<&'static aws_config::SdkConfig, AwsSetupError> {
    SDK_CONFIG
        .get_or_try_init(|| async {
            let http = https_client(ca_bundle().as_deref())?;
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
            // Lambda gives a function its role's credentials in these variables, where the
            // default chain looks first and stops. Naming that provider spares every cold start
            // building the rest of the chain (web identity's STS client, the container and
            // instance-metadata clients) only to leave it unused.
            if ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
                .iter()
                .all(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
            {
                loader =
                    loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
            }
            Ok(loader.load().await)
        })
        .await
}

/// The bundle `AWS_CA_BUNDLE` names, if it is set and not empty.
pub fn ca_bundle() -> Option<PathBuf> {
    std::env::var_os(CA_BUNDLE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The SDK's HTTPS client (rustls on aws-lc, as the SDK's default) trusting the roots of
/// `bundle`, or Amazon Trust Services' without one.
pub fn https_client(bundle: Option<&Path>) -> Result<aws_sdk_secretsmanager::config::SharedHttpClient, AwsSetupError> {
    let trust = trust_store(bundle)?;
    let tls = TlsContext::builder().with_trust_store(trust).build().map_err(|e| AwsSetupError::Client(e.into()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https())
}

/// The AWS clients' trust: the roots of `bundle`, checked here because the SDK's TLS layer
/// panics on a certificate it cannot parse; or the compiled-in roots.
pub fn trust_store(bundle: Option<&Path>) -> Result<TrustStore, AwsSetupError> {
    let Some(path) = bundle else {
        return Ok(TrustStore::empty().with_native_roots(false).with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS));
    };
    let pem = std::fs::read(path).map_err(|source| AwsSetupError::CaBundleUnreadable { path: path.into(), source })?;
    let roots = check_roots(path, &pem)?;
    tracing::debug!(bundle = %path.display(), roots, "AWS clients trust the roots of {CA_BUNDLE_ENV}");
    Ok(TrustStore::empty().with_native_roots(false).with_pem_certificate(pem))
}

/// How many roots `pem` (read from `path`) holds, each parsed as the TLS layer will.
fn check_roots(path: &Path, pem: &[u8]) -> Result<usize, AwsSetupError> {
    let invalid =
        |number: usize, problem: String| AwsSetupError::CaBundleInvalid { path: path.into(), number, problem };
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| invalid(i + 1, e.to_string()))?;
        store.add(cert).map_err(|e| invalid(i + 1, e.to_string()))?;
    }
    match store.len() {
        0 => Err(AwsSetupError::CaBundleEmpty { path: path.into() }),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_roots() {
        // Arrange
        let pem = AMAZON_TRUST_SERVICES_ROOTS.as_bytes();

        // Act
        let roots = check_roots(Path::new("amazon-trust-services-roots.pem"), pem);

        // Assert
        assert_eq!(roots.unwrap(), 5);
        for name in ["Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4"] {
            assert!(AMAZON_TRUST_SERVICES_ROOTS.contains(&format!("CN={name},")), "{name}");
        }
        assert!(AMAZON_TRUST_SERVICES_ROOTS.contains("CN=Starfield Services Root Certificate Authority - G2,"));
    }

    #[test]
    fn a_bundle_that_cannot_be_read_is_named() {
        // Arrange
        let path = std::env::temp_dir().join(format!("no-bundle-{}.pem", uuid::Uuid::new_v4()));

        // Act
        let err = trust_store(Some(&path)).unwrap_err();

        // Assert
        assert!(matches!(err, AwsSetupError::CaBundleUnreadable { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!("AWS_CA_BUNDLE names {}", path.display())), "{err}");
    }

    #[test]
    fn a_bundle_without_a_certificate_is_refused() {
        // Arrange: a private key block only, whose bytes must not reach the message.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n")
            .unwrap();

        // Act
        let err = trust_store(Some(&path)).unwrap_err();

        // Assert
        assert!(matches!(err, AwsSetupError::CaBundleEmpty { .. }), "{err:?}");
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn a_bundle_with_a_damaged_certificate_names_its_number() {
        // Arrange: one good root, then a certificate block whose DER is not a certificate.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle.pem");
        let first = AMAZON_TRUST_SERVICES_ROOTS.split("-----END CERTIFICATE-----").next().unwrap();
        let damaged = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        std::fs::write(&path, format!("{first}-----END CERTIFICATE-----\n{damaged}")).unwrap();

        // Act
        let err = trust_store(Some(&path)).unwrap_err();

        // Assert
        assert!(matches!(err, AwsSetupError::CaBundleInvalid { number: 2, .. }), "{err:?}");
    }
}
