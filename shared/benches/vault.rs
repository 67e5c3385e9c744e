//! Token vault cost per token, with two baselines measured in the same run so the figures
//! mean something on a shared, noisy machine: a plain copy of the same bytes (`to_vec`), and
//! raw AES-256-GCM from the `aes-gcm` crate without the vault's framing, associated data
//! building or secrecy wrapping.
//!
//! Run: `cargo bench -p shared --bench vault`

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secrecy::{SecretBox, SecretString};
use shared::db::{ConnectionId, TenantId};
use shared::vault::{KEY_LEN, KeyId, TokenContext, TokenKey, Vault};
use std::hint::black_box;
use std::time::Duration;
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let old_id = KeyId::new("k2025-01").unwrap();
    let new_id = KeyId::new("k2025-06").unwrap();
    let old_key: TokenKey = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.fill(1));
    let new_key: TokenKey = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.fill(2));
    // Two keys, as during a rotation: the lookup cost of the real configuration is included.
    let vault = Vault::new(&new_id, [(&old_id, &old_key), (&new_id, &new_key)]).unwrap();
    let ctx = TokenContext::access(TenantId(Uuid::new_v4()), ConnectionId::generate());
    let raw = Aes256Gcm::new(&[2u8; KEY_LEN].into());
    // A fixed nonce is fine for a benchmark that never stores or compares its output.
    let nonce = Nonce::<Aes256Gcm>::from([7u8; 12]);
    let aad = [0u8; 64];

    for (label, len) in [("100B", 100usize), ("2KB", 2048)] {
        let text: String = "x".repeat(len);
        let token = SecretString::from(text.as_str());
        let stored = vault.encrypt(ctx, &token);
        let raw_ct = raw.encrypt(&nonce, Payload { msg: text.as_bytes(), aad: &aad }).unwrap();

        let mut g = c.benchmark_group(format!("vault/{label}"));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("baseline", "to_vec"), |b| {
            b.iter(|| black_box(black_box(text.as_bytes()).to_vec()))
        });
        g.bench_function(BenchmarkId::new("baseline", "raw_aes_gcm_encrypt"), |b| {
            b.iter(|| raw.encrypt(&nonce, Payload { msg: black_box(text.as_bytes()), aad: &aad }).unwrap())
        });
        g.bench_function(BenchmarkId::new("baseline", "raw_aes_gcm_decrypt"), |b| {
            b.iter(|| raw.decrypt(&nonce, Payload { msg: black_box(&raw_ct), aad: &aad }).unwrap())
        });
        g.bench_function(BenchmarkId::new("vault", "encrypt"), |b| {
            b.iter(|| vault.encrypt(black_box(ctx), black_box(&token)))
        });
        g.bench_function(BenchmarkId::new("vault", "decrypt"), |b| {
            b.iter(|| vault.decrypt(black_box(ctx), black_box(&stored)).unwrap())
        });
        g.bench_function(BenchmarkId::new("vault", "encrypt+decrypt"), |b| {
            b.iter(|| {
                let s = vault.encrypt(black_box(ctx), black_box(&token));
                vault.decrypt(ctx, &s).unwrap()
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    // Short runs: the machine is shared; the baselines in the same run carry the comparison.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench
}
criterion_main!(benches);
