//! CPU of one TLS client handshake on the stack the SQL Server pool uses (tiberius over
//! tokio-rustls 0.26, rustls 0.23 with aws-lc), against a local TLS listener: the first
//! handshake of the process (which seeds aws-lc's random generator) and the median of the
//! next ones. scripts/bench-lambda runs it against moto's TLS listener for BENCHMARKS.md.
//!
//! Also counted: the root store tiberius builds from the platform's roots (rustls-native-certs,
//! which honours `SSL_CERT_FILE`) for each new connection when the connection string names no
//! other trust, median of the rounds.
//!
//! Usage: tls-handshake HOST:PORT CA_PEM [ROUNDS]. CPU is the thread's own CPU clock, on a
//! current-thread runtime so every step of the handshake runs on this thread.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

/// This thread's CPU time. clock_gettime brings the kernel's count up to date when read, where
/// /proc/thread-self/schedstat only moves at the scheduler's ticks and switches (it read 0 for
/// the root store, which runs without a switch).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer and reads nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (addr, ca) = (args.next().ok_or("HOST:PORT")?, args.next().ok_or("CA_PEM")?);
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca)? {
        roots.add(cert?)?;
    }
    let host = addr.rsplit_once(':').ok_or("HOST:PORT")?.0.to_owned();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let config = Arc::new(config.with_root_certificates(roots).with_no_client_auth());
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut cpu_ms = Vec::with_capacity(rounds + 1);
    for _ in 0..=rounds {
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let before = thread_cpu_ns();
        let tls = connector.connect(ServerName::try_from(host.clone())?, tcp).await?;
        cpu_ms.push((thread_cpu_ns() - before) as f64 / 1e6);
        drop(tls);
    }
    let first = cpu_ms.remove(0);
    cpu_ms.sort_by(f64::total_cmp);
    let (mut roots_ms, mut roots) = (Vec::with_capacity(rounds), 0);
    for _ in 0..rounds.max(1) {
        let before = thread_cpu_ns();
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots_ms.push((thread_cpu_ns() - before) as f64 / 1e6);
        roots = store.len();
    }
    roots_ms.sort_by(f64::total_cmp);
    println!(
        "{{\"first_ms\": {first:.2}, \"median_ms\": {:.2}, \"platform_roots_ms\": {:.2}, \"platform_roots\": {roots}}}",
        cpu_ms[cpu_ms.len() / 2],
        roots_ms[roots_ms.len() / 2]
    );
    Ok(())
}
