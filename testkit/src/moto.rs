//! A real AWS emulator for tests (Secrets Manager, and the S3 and SQS of the sync worker):
//! moto's server, from the repo's `.venv` (made by `scripts/test`), started on a free loopback
//! port (over plain HTTP, or TLS with a CA made per run) and killed on drop. With `QUODSI_MOTO_ENDPOINT` set, that server is used instead and
//! nothing is started.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MOTO_ENDPOINT_ENV: &str = "QUODSI_MOTO_ENDPOINT";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Moto {
    endpoint: String,
    child: Option<Child>,
    _log: Option<tempfile::NamedTempFile>,
    tls: Option<TestCa>,
}

/// The certificates of moto over TLS, made for one run in a temporary directory: a CA, and a
/// certificate for 127.0.0.1 signed by it.
struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.distinguished_name.push(DnType::CommonName, "quodsi test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("a self-signed CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server certificate parameters");
        let cert = params.signed_by(&key, &issuer).expect("a server certificate signed by the CA");
        let dir = tempfile::tempdir().expect("a directory for the certificates");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("write cert.pem");
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("write key.pem");
        TestCa { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn repo_root() -> PathBuf {
    // testkit/ is one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ lives inside the repository").to_path_buf()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("bound address").port()
}

impl Moto {
    /// The emulator to test against; panics (fails the test) if it cannot be had.
    pub fn start() -> Moto {
        if let Ok(endpoint) = std::env::var(MOTO_ENDPOINT_ENV)
            && !endpoint.trim().is_empty()
        {
            return Moto {
                endpoint: endpoint.trim().trim_end_matches('/').to_owned(),
                child: None,
                _log: None,
                tls: None,
            };
        }
        Moto::launch(None)
    }

    /// An emulator of its own serving HTTPS, with a certificate signed by a CA made for this
    /// run ([`Moto::ca_file`]); [`MOTO_ENDPOINT_ENV`] does not apply.
    pub fn start_tls() -> Moto {
        Moto::launch(Some(TestCa::new()))
    }

    /// The PEM file of the CA that signed a [`Moto::start_tls`] server's certificate.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|ca| ca.file("ca.pem"))
    }

    fn launch(tls: Option<TestCa>) -> Moto {
        let bin = repo_root().join(".venv/bin/moto_server");
        assert!(
            bin.is_file(),
            "{} is missing: run scripts/test to install the test tools (or set {MOTO_ENDPOINT_ENV})",
            bin.display()
        );
        let log = tempfile::NamedTempFile::new().expect("temporary log file");
        // A port found free may be taken before moto binds it; a few attempts cover that.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut command = Command::new(&bin);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            if let Some(ca) = &tls {
                command.arg("-c").arg(ca.file("cert.pem")).arg("-k").arg(ca.file("key.pem"));
            }
            let mut child = command
                .stdin(Stdio::null())
                // Cloned handles share one offset, so the two streams append, not overwrite.
                .stdout(Stdio::from(log.as_file().try_clone().expect("log file")))
                .stderr(Stdio::from(log.as_file().try_clone().expect("log file")))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "moto_server exited with {status}: {}",
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    return Moto { endpoint: format!("{scheme}://{addr}"), child: Some(child), _log: Some(log), tls };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "moto_server did not listen on {addr} within {READY_TIMEOUT:?}: {}",
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start moto_server: {last_error}");
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A client for the emulator with dummy credentials and an explicit region, set on the
    /// SDK config rather than in the process environment (over TLS, trusting the run's CA).
    pub fn client(&self) -> Client {
        let http = shared::aws::https_client(self.ca_file().as_deref()).expect("the AWS HTTPS client");
        let conf = aws_sdk_secretsmanager::Config::builder()
            .http_client(http)
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto-test"))
            .build();
        Client::from_conf(conf)
    }

    /// Creates a secret under a fresh name (servers given by QUODSI_MOTO_ENDPOINT are shared
    /// between runs) and returns its ARN.
    pub async fn create_secret(&self, prefix: &str, value: &str) -> String {
        let out = self
            .client()
            .create_secret()
            .name(format!("{prefix}-{}", uuid::Uuid::new_v4()))
            .secret_string(value)
            .send()
            .await
            .expect("create_secret on moto");
        out.arn().expect("moto returns the ARN").to_owned()
    }

    /// Creates an S3 bucket under a fresh name (`prefix` plus 32 hex digits, so at most 30
    /// characters of lowercase letters, digits and hyphens) and returns the name. moto picks the
    /// service from the credential scope of the Authorization header and checks no signature,
    /// so one plain PUT does it and the test kit needs no S3 client.
    pub fn create_bucket(&self, prefix: &str) -> String {
        assert!(
            prefix.len() <= 30 && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "bucket prefix {prefix:?}: at most 30 lowercase letters, digits and hyphens"
        );
        let bucket = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        let authority = self.endpoint.strip_prefix("http://").expect("moto's endpoint is plain http://host:port");
        let mut stream =
            TcpStream::connect(authority).unwrap_or_else(|e| panic!("connect to moto at {authority}: {e}"));
        stream.set_read_timeout(Some(READY_TIMEOUT)).expect("read timeout");
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send CreateBucket to moto");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read moto's CreateBucket response");
        assert!(response.starts_with("HTTP/1.1 200"), "moto refused CreateBucket {bucket}: {response}");
        bucket
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
