//! The providers' content hashes, computed while a file streams through the sync worker.
//!
//! `cloud_files.content_hash` holds one algorithm per provider, implied by the connection's
//! `provider_type`, as lowercase hex (research note `sync-worker.md` §2): OneDrive and
//! SharePoint QuickXorHash (Graph sends it base64, 20 bytes), Google Drive `md5Checksum`,
//! Dropbox `content_hash` (SHA-256 of the SHA-256s of 4 MiB blocks), Box `sha1`. The worker
//! hashes the bytes it downloads with the provider's algorithm to check them against the
//! provider's value. That one hash is also Quodsi's version of its copy: after a transfer the
//! copy and the provider's file have the same bytes, so a later sync tells a changed copy by
//! hashing it with the same algorithm. No second, provider-neutral hash is taken: at transfer
//! speed a second SHA-256 pass costs as much CPU as the whole copy (BENCHMARKS.md). Hashes mean
//! something only within one provider: never compare them across providers.
//!
//! QuickXorHash has no maintained crate, so it is implemented here after Microsoft's
//! description (OneDrive docs `code-snippets/quickxorhash.md`) and rclone's port
//! (`backend/onedrive/quickxorhash`), and checked against rclone's test vectors. MD5, SHA-1 and
//! SHA-256 are the RustCrypto crates.

use base64::Engine as _;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::db::ProviderType;

/// The algorithm of a provider's content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// Microsoft's QuickXorHash: OneDrive (Personal and Business) and SharePoint.
    QuickXor,
    /// MD5: Google Drive's `md5Checksum`.
    Md5,
    /// Dropbox's `content_hash`: SHA-256 over the SHA-256 of each 4 MiB block.
    Dropbox,
    /// SHA-1: Box's `sha1`.
    Sha1,
}

impl HashAlg {
    pub const ALL: [HashAlg; 4] = [HashAlg::QuickXor, HashAlg::Md5, HashAlg::Dropbox, HashAlg::Sha1];

    /// The one algorithm stored for a provider's files.
    pub fn for_provider(provider: ProviderType) -> HashAlg {
        match provider {
            ProviderType::OneDrive | ProviderType::SharePoint => HashAlg::QuickXor,
            ProviderType::GDrive => HashAlg::Md5,
            ProviderType::Dropbox => HashAlg::Dropbox,
            ProviderType::Box => HashAlg::Sha1,
        }
    }

    /// The name written next to the hash in `file_metadata` (`"hash_alg"`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::QuickXor => "quickxor",
            HashAlg::Md5 => "md5",
            HashAlg::Dropbox => "dropbox",
            HashAlg::Sha1 => "sha1",
        }
    }

    /// Whether hashing a chunk costs much less than copying it: QuickXorHash (tens of GB/s in
    /// cache, only XOR) does; MD5, SHA-1 and SHA-256 (0.4 to 1.2 GB/s on one core) do not. A
    /// cheap hash may run inline where the chunk arrives; the others get a thread of their own.
    pub fn cheaper_than_a_copy(self) -> bool {
        self == HashAlg::QuickXor
    }

    /// Length of the stored (hex) form.
    pub fn hex_len(self) -> usize {
        2 * self.digest_len()
    }

    fn digest_len(self) -> usize {
        match self {
            HashAlg::QuickXor => QUICKXOR_LEN,
            HashAlg::Md5 => 16,
            HashAlg::Dropbox => 32,
            HashAlg::Sha1 => 20,
        }
    }
}

/// A provider's hash value in the form `cloud_files.content_hash` stores: lowercase hex of the
/// digest. `None` when the value is not a well-formed digest of `alg`, so a malformed value is
/// stored as "no hash" rather than as something that can never match.
///
/// Graph sends QuickXorHash as base64 of the 20 bytes; it is decoded here. A QuickXorHash that
/// is already 40 hex digits (a value read back from our own table) is accepted too, so
/// normalising twice changes nothing. The other providers send hex: its length and digits are
/// checked and it is lowercased.
pub fn normalize(alg: HashAlg, provider_value: &str) -> Option<String> {
    if alg == HashAlg::QuickXor && provider_value.len() != alg.hex_len() {
        // 20 bytes are 28 base64 characters with padding; the strict engine refuses anything
        // else (missing padding, non-canonical trailing bits, other alphabets).
        let bytes = base64::engine::general_purpose::STANDARD.decode(provider_value).ok()?;
        return (bytes.len() == QUICKXOR_LEN).then(|| hex::encode(bytes));
    }
    let well_formed = provider_value.len() == alg.hex_len() && provider_value.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| provider_value.to_ascii_lowercase())
}

/// What [`ContentHasher::finish`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// The provider's algorithm, lowercase hex (as [`normalize`] gives the provider's value).
    pub provider: String,
    /// Bytes hashed.
    pub size: u64,
}

/// The provider's hash of one file, fed chunk by chunk as it streams. The result
/// does not depend on how the content is split into [`ContentHasher::update`] calls.
#[derive(Clone)]
pub struct ContentHasher {
    alg: HashAlg,
    provider: ProviderHasher,
    size: u64,
}

#[derive(Clone)]
enum ProviderHasher {
    QuickXor(QuickXorHash),
    Md5(Md5),
    Dropbox(DropboxContentHash),
    Sha1(Sha1),
}

impl ContentHasher {
    pub fn new(alg: HashAlg) -> ContentHasher {
        let provider = match alg {
            HashAlg::QuickXor => ProviderHasher::QuickXor(QuickXorHash::new()),
            HashAlg::Md5 => ProviderHasher::Md5(Md5::new()),
            HashAlg::Dropbox => ProviderHasher::Dropbox(DropboxContentHash::new()),
            HashAlg::Sha1 => ProviderHasher::Sha1(Sha1::new()),
        };
        ContentHasher { alg, provider, size: 0 }
    }

    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Bytes hashed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.provider {
            ProviderHasher::QuickXor(h) => h.update(data),
            ProviderHasher::Md5(h) => h.update(data),
            ProviderHasher::Dropbox(h) => h.update(data),
            ProviderHasher::Sha1(h) => h.update(data),
        }
        self.size += data.len() as u64;
    }

    pub fn finish(self) -> Digests {
        let provider = match self.provider {
            ProviderHasher::QuickXor(h) => hex::encode(h.finish()),
            ProviderHasher::Md5(h) => hex::encode(h.finalize()),
            ProviderHasher::Dropbox(h) => hex::encode(h.finish()),
            ProviderHasher::Sha1(h) => hex::encode(h.finalize()),
        };
        Digests { provider, size: self.size }
    }
}

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentHasher").field("alg", &self.alg).field("size", &self.size).finish_non_exhaustive()
    }
}

const QUICKXOR_LEN: usize = 20;
const QUICKXOR_WIDTH_BITS: usize = 8 * QUICKXOR_LEN;
const QUICKXOR_SHIFT: usize = 11;

/// Microsoft's QuickXorHash: byte `n` of the input is XORed into a 160-bit block at bit
/// `11 * n mod 160` (rotating, so bits past the end wrap to the start), and the input length
/// (64-bit little-endian) is XORed into the block's last 8 bytes. The block is stored little
/// endian: bit `k` is bit `k % 8` of byte `k / 8`.
///
/// Since `11 * 160 ≡ 0 (mod 160)`, bytes whose positions are equal modulo 160 land on the same
/// bits. `update` therefore only XOR-folds the input into 160 byte lanes (cheap, and the same
/// for any split of the input), and `finish` places the 160 lanes at their bit offsets once.
#[derive(Clone)]
pub struct QuickXorHash {
    lanes: [u8; QUICKXOR_WIDTH_BITS],
    len: u64,
}

impl Default for QuickXorHash {
    fn default() -> Self {
        QuickXorHash::new()
    }
}

impl QuickXorHash {
    pub fn new() -> QuickXorHash {
        QuickXorHash { lanes: [0; QUICKXOR_WIDTH_BITS], len: 0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        let start = (self.len % QUICKXOR_WIDTH_BITS as u64) as usize;
        // Up to the next multiple of 160 input bytes, then whole rounds of 160 lanes.
        let (head, rest) = data.split_at(data.len().min(QUICKXOR_WIDTH_BITS - start));
        xor_into(&mut self.lanes[start..], head);
        let whole = rest.len() - rest.len() % QUICKXOR_WIDTH_BITS;
        xor_rounds(&mut self.lanes, &rest[..whole]);
        xor_into(&mut self.lanes, &rest[whole..]);
        self.len += data.len() as u64;
    }

    pub fn finish(self) -> [u8; QUICKXOR_LEN] {
        let mut block = [0u8; QUICKXOR_LEN];
        for (lane, &byte) in self.lanes.iter().enumerate() {
            let bit = (lane * QUICKXOR_SHIFT) % QUICKXOR_WIDTH_BITS;
            let (at, shift) = (bit / 8, bit % 8);
            let spread = u16::from(byte) << shift;
            block[at] ^= spread as u8;
            block[(at + 1) % QUICKXOR_LEN] ^= (spread >> 8) as u8;
        }
        for (b, l) in block[QUICKXOR_LEN - 8..].iter_mut().zip(self.len.to_le_bytes()) {
            *b ^= l;
        }
        block
    }
}

/// XORs `data` into `lanes`, position by position, eight bytes at a time: this crate is built
/// for size (`opt-level = "s"`), which leaves byte loops unvectorised, and the hash runs over
/// every byte an upload or download moves.
fn xor_into(lanes: &mut [u8], data: &[u8]) {
    let n = lanes.len().min(data.len());
    let (lanes, data) = (&mut lanes[..n], &data[..n]);
    let mut lane_words = lanes.chunks_exact_mut(8);
    let mut data_words = data.chunks_exact(8);
    for (lane, word) in (&mut lane_words).zip(&mut data_words) {
        let folded = u64::from_ne_bytes(lane.try_into().expect("8 bytes"))
            ^ u64::from_ne_bytes(word.try_into().expect("8 bytes"));
        lane.copy_from_slice(&folded.to_ne_bytes());
    }
    for (lane, byte) in lane_words.into_remainder().iter_mut().zip(data_words.remainder()) {
        *lane ^= byte;
    }
}

/// XORs whole rounds of 160 bytes into the 160 lanes: the bulk of every update, and a local
/// download hashes QuickXorHash inline, so its speed is the download's. Each half of the lanes
/// is folded over all the rounds in turn, as ten 8-byte words in named locals: ten words and the
/// loop's pointers fit x86_64's sixteen general registers, where twenty would not. An array of
/// words indexed in a loop stays in memory at this crate's opt-level "s" (no loop unrolling, no
/// vectoriser), and then every word's XOR went through a store and a load: 13 to 42 GB/s on
/// the benchmark machine depending on where the loop landed in the binary (BENCHMARKS.md, sync
/// worker). The second half reads the rounds again, from cache: an update is one HTTP chunk.
fn xor_rounds(lanes: &mut [u8; QUICKXOR_WIDTH_BITS], data: &[u8]) {
    let (low, high) = lanes.split_at_mut(HALF_ROUND);
    xor_half_rounds::<0>(low.try_into().expect("half the lanes"), data);
    xor_half_rounds::<HALF_ROUND>(high.try_into().expect("half the lanes"), data);
}

const HALF_ROUND: usize = QUICKXOR_WIDTH_BITS / 2;

/// The 8-byte word at `at` of `bytes`, in native order (lanes and data alike, so XOR is
/// position for position).
fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// XORs bytes `OFFSET..OFFSET + 80` of every whole 160-byte round of `data` into `lanes`.
fn xor_half_rounds<const OFFSET: usize>(lanes: &mut [u8; HALF_ROUND], data: &[u8]) {
    let [mut w0, mut w1, mut w2, mut w3, mut w4, mut w5, mut w6, mut w7, mut w8, mut w9] =
        std::array::from_fn(|i| word(lanes, 8 * i));
    for round in data.chunks_exact(QUICKXOR_WIDTH_BITS) {
        let half: &[u8; HALF_ROUND] = round[OFFSET..OFFSET + HALF_ROUND].try_into().expect("half a round");
        w0 ^= word(half, 0);
        w1 ^= word(half, 8);
        w2 ^= word(half, 16);
        w3 ^= word(half, 24);
        w4 ^= word(half, 32);
        w5 ^= word(half, 40);
        w6 ^= word(half, 48);
        w7 ^= word(half, 56);
        w8 ^= word(half, 64);
        w9 ^= word(half, 72);
    }
    for (lane, w) in lanes.chunks_exact_mut(8).zip([w0, w1, w2, w3, w4, w5, w6, w7, w8, w9]) {
        lane.copy_from_slice(&w.to_ne_bytes());
    }
}

/// Dropbox's block size for `content_hash`: 4 MiB.
pub const DROPBOX_BLOCK: usize = 4 * 1024 * 1024;

/// Dropbox's `content_hash`: the content split into 4 MiB blocks (the last may be shorter),
/// SHA-256 of each, and SHA-256 of those digests joined. Empty content has no blocks, so its
/// hash is SHA-256 of the empty string.
#[derive(Clone, Default)]
pub struct DropboxContentHash {
    overall: Sha256,
    block: Sha256,
    in_block: usize,
}

impl DropboxContentHash {
    pub fn new() -> DropboxContentHash {
        DropboxContentHash::default()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (now, later) = data.split_at(data.len().min(DROPBOX_BLOCK - self.in_block));
            self.block.update(now);
            self.in_block += now.len();
            // A full block is closed at once, so content of exactly N blocks ends with no
            // empty block after it.
            if self.in_block == DROPBOX_BLOCK {
                self.overall.update(self.block.finalize_reset());
                self.in_block = 0;
            }
            data = later;
        }
    }

    pub fn finish(mut self) -> [u8; 32] {
        if self.in_block > 0 {
            self.overall.update(self.block.finalize());
        }
        self.overall.finalize().into()
    }
}

/// Chunks queued for the hashing thread: enough that neither side waits on the other's jitter,
/// few enough that a file's bytes in memory stay a handful of chunks (reqwest hands out at most
/// some hundreds of KiB at a time).
const HASH_QUEUE_CHUNKS: usize = 16;

/// Most Dropbox blocks hashed at once. Each holds its 4 MiB until its digest is taken, so this
/// bounds the memory a download holds for hashing (with the block being filled, 5 blocks).
const MAX_BLOCK_THREADS: usize = 4;

/// A file's hash, computed on a blocking thread while its bytes flow on to their destination.
///
/// Hashing inside the stream would put the hash and the write one after the other on the same
/// task; here they overlap, so a download costs about the slower of the two, not their sum. The
/// stream waits when the hasher falls [`HASH_QUEUE_CHUNKS`] behind, so memory stays bounded.
/// Dropbox's hash is the one that can go faster than one core: its 4 MiB blocks are hashed
/// independently, so with more than one CPU's worth of time they are hashed on threads of
/// their own ([`DropboxBlocks`], [`block_threads`]).
#[derive(Debug)]
pub(crate) struct HashAlongside {
    task: tokio::task::JoinHandle<Digests>,
}

impl HashAlongside {
    /// `body`, passed through unchanged, and the hash of every chunk it yields (errors are passed
    /// on and not hashed). Must be called within a Tokio runtime.
    pub fn tap<S, E>(
        alg: HashAlg,
        body: S,
    ) -> (impl futures_util::Stream<Item = Result<bytes::Bytes, E>>, HashAlongside)
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    {
        HashAlongside::tap_with(alg, block_threads(), body)
    }

    /// [`HashAlongside::tap`] with up to `threads` Dropbox blocks hashed at once (1: on the
    /// hashing thread itself, as the other algorithms are).
    fn tap_with<S, E>(
        alg: HashAlg,
        threads: usize,
        body: S,
    ) -> (impl futures_util::Stream<Item = Result<bytes::Bytes, E>>, HashAlongside)
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    {
        use futures_util::StreamExt as _;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(HASH_QUEUE_CHUNKS);
        let task = tokio::task::spawn_blocking(move || {
            if alg == HashAlg::Dropbox && threads > 1 {
                let mut hasher = DropboxBlocks::new(threads);
                while let Some(chunk) = rx.blocking_recv() {
                    hasher.update(chunk);
                }
                return hasher.finish();
            }
            let mut hasher = ContentHasher::new(alg);
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.finish()
        });
        let body = body.then(move |chunk| {
            let tx = tx.clone();
            async move {
                if let Ok(bytes) = &chunk {
                    // A clone of `Bytes` shares the buffer. A send fails only when the hashing
                    // thread is gone, which `finish` reports.
                    let _ = tx.send(bytes.clone()).await;
                }
                chunk
            }
        });
        (body, HashAlongside { task })
    }

    /// The digests of everything the stream yielded, once the stream has been dropped (that
    /// ends the hashing thread's input). `None` if the hashing thread panicked.
    pub async fn finish(self) -> Option<Digests> {
        self.task.await.ok()
    }
}

/// How many Dropbox blocks to hash at once in this process: one per CPU, at most
/// [`MAX_BLOCK_THREADS`], and on Lambda no more than the CPU time its memory size buys. A
/// function gets one vCPU's worth of time per 1,769 MB however many vCPUs it sees, so below that
/// (the sync worker runs at 1,024 MB) a second block thread only holds another 4 MiB.
fn block_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let memory_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|m| m.trim().parse().ok());
        threads_for(cpus, memory_mb)
    })
}

/// [`block_threads`] for `cpus` CPUs and, on Lambda, `memory_mb` of memory.
fn threads_for(cpus: usize, lambda_memory_mb: Option<u32>) -> usize {
    /// The memory at which Lambda gives a function one full vCPU of time.
    const MB_PER_VCPU: u32 = 1_769;
    let by_memory = lambda_memory_mb.map_or(usize::MAX, |mb| mb.div_ceil(MB_PER_VCPU).max(1) as usize);
    cpus.min(by_memory).clamp(1, MAX_BLOCK_THREADS)
}

/// Dropbox's `content_hash` with its blocks hashed on up to `threads` threads at once: the
/// same result as [`DropboxContentHash`], which SHA-256's speed on one core (about 1.2 GB/s)
/// would otherwise cap. The chunks are kept, not copied (`Bytes` shares its buffer), until
/// their block's thread has hashed them; block digests are taken in order, and the next block
/// waits for the oldest when `threads` are busy, so memory stays `threads + 1` blocks.
struct DropboxBlocks {
    overall: Sha256,
    block: Vec<bytes::Bytes>,
    in_block: usize,
    hashing: std::collections::VecDeque<std::thread::JoinHandle<[u8; 32]>>,
    threads: usize,
    size: u64,
}

impl DropboxBlocks {
    fn new(threads: usize) -> DropboxBlocks {
        DropboxBlocks {
            overall: Sha256::new(),
            block: Vec::new(),
            in_block: 0,
            hashing: std::collections::VecDeque::new(),
            threads: threads.max(1),
            size: 0,
        }
    }

    fn update(&mut self, mut chunk: bytes::Bytes) {
        self.size += chunk.len() as u64;
        while !chunk.is_empty() {
            let now = chunk.split_to(chunk.len().min(DROPBOX_BLOCK - self.in_block));
            self.in_block += now.len();
            self.block.push(now);
            // As in `DropboxContentHash`: a full block is closed at once.
            if self.in_block == DROPBOX_BLOCK {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let parts = std::mem::take(&mut self.block);
        self.in_block = 0;
        while self.hashing.len() >= self.threads {
            self.take_oldest();
        }
        let parts = std::sync::Arc::new(parts);
        let on_thread = std::sync::Arc::clone(&parts);
        match std::thread::Builder::new().spawn(move || block_digest(&on_thread)) {
            Ok(thread) => self.hashing.push_back(thread),
            Err(_) => {
                // No thread to be had (a process limit): hashed here, in order, instead.
                while !self.hashing.is_empty() {
                    self.take_oldest();
                }
                self.overall.update(block_digest(&parts));
            }
        }
    }

    fn take_oldest(&mut self) {
        if let Some(thread) = self.hashing.pop_front() {
            // A block thread only hashes; if it panicked, so does this one, and
            // `HashAlongside::finish` reports the hash as lost.
            let digest = thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            self.overall.update(digest);
        }
    }

    fn finish(mut self) -> Digests {
        // The last block is hashed here, while the threads finish theirs: this thread has
        // nothing else to do, and a file of one block (most files) starts no thread at all.
        let last = (self.in_block > 0).then(|| block_digest(&std::mem::take(&mut self.block)));
        while !self.hashing.is_empty() {
            self.take_oldest();
        }
        if let Some(last) = last {
            self.overall.update(last);
        }
        Digests { provider: hex::encode(self.overall.finalize()), size: self.size }
    }
}

fn block_digest(parts: &[bytes::Bytes]) -> [u8; 32] {
    let mut block = Sha256::new();
    for part in parts {
        block.update(part);
    }
    block.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s.replace('\n', "")).expect("test vector is base64")
    }

    fn quickxor_b64(data: &[u8]) -> String {
        let mut h = QuickXorHash::new();
        h.update(data);
        base64::engine::general_purpose::STANDARD.encode(h.finish())
    }

    /// Deterministic pseudo-random numbers (SplitMix64), so a failing split can be replayed.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// Hashes `data` in pieces cut at random points (some empty).
    fn digests_split(alg: HashAlg, data: &[u8], rng: &mut SplitMix) -> Digests {
        let mut h = ContentHasher::new(alg);
        let mut rest = data;
        while !rest.is_empty() {
            let cut = rng.below(rest.len() + 1).min(rng.below(2 * DROPBOX_BLOCK / 3 + 1));
            let (now, later) = rest.split_at(cut);
            h.update(now);
            rest = later;
        }
        h.finish()
    }

    fn digests_whole(alg: HashAlg, data: &[u8]) -> Digests {
        let mut h = ContentHasher::new(alg);
        h.update(data);
        h.finish()
    }

    /// rclone `backend/onedrive/quickxorhash/quickxorhash_test.go` @0ce4363: (size, input,
    /// expected), both base64. Sizes 0..=20 stay inside the first 160 bits; 21 and up wrap
    /// past bit 160 (byte 15 already reaches bit 165); 111..=333 wrap the 160 lanes too.
    const RCLONE_VECTORS: &[(usize, &str, &str)] = &[
        (0, "", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        (1, "Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        (2, "tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
        (3, "0pZP", "0rDEEwAAAAAAAAAAAwAAAAAAAAA="),
        (8, "/aNzzCFPS/A=", "/RjFHJgRgicsAR4ACAAAAAAAAAA="),
        (13, "vPgoDjOfO6fm71RxLw==", "vMAHChwwg0/s4BTmdQcV4vACAAA="),
        (14, "XoJ1AsoR4fDYJrDqYs4=", "XhBEHQSgjAiEAx7YPgEs1CEGZwA="),
        (15, "gQaybEqS/4UlDc8e4IJm", "gDCALNigBEn8oxAlZ8AzPAAOQZg="),
        (16, "2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
        (20, "T6LYJIfDh81JrAK309H2JMJTXis=", "zBTHrspn3mEcohlJdIUAbjGNaNg="),
        (21, "DWAAX5/CIfrmErgZa8ot6ZraeSbu", "LR2Z0PjuRYGKQB/mhQAuMrAGZbQ="),
        (32, "NbYXsp5/K6mR+NmHwExjvWeWDJFnXTKWVlzYHoesp2E=", "wjuAuWDiq04qDt1R8hHWDDcwVoQ="),
        (
            64,
            "Mb7EGva2rEE5fENDL85P+BsapHEEjv2/siVhKjvAQe02feExVOQSkfmuYzU/kTF1MaKjPmKF/w+c\nbvwfdWL8aQ==",
            "n1anP5NfvD4XDYWIeRPW3ZkPv1Y=",
        ),
        (
            111,
            "jyibxJSzO6ZiZ0O1qe3tG/bvIAYssvukh9suIT5wEy1JBINVgPiqdsTW0cOpP0aUfP7mgqLfADkz\n\
             I/m/GgCuVhr8oFLrOCoTx1/psBOWwhltCbhUx51Icm9aH8tY4Z3ccU+6BKpYQkLCy0B/A9Zc",
            "hZfLIilSITC6N3e3tQ/iSgEzkto=",
        ),
        (
            128,
            "ikwCorI7PKWz17EI50jZCGbV9JU2E8bXVfxNMg5zdmqSZ2NlsQPp0kqYIPjzwTg1MBtfWPg53k0h\n\
             0P2naJNEVgrqpoHTfV2b3pJ4m0zYPTJmUX4Bg/lOxcnCxAYKU29Y5F0U8Quz7ZXFBEweftXxJ7RS\n\
             4r6N7BzJrPsLhY7hgck=",
            "imAoFvCWlDn4yVw3/oq1PDbbm6U=",
        ),
        (
            222,
            "PfxMcUd0vIW6VbHG/uj/Y0W6qEoKmyBD0nYebEKazKaKG+UaDqBEcmQjbfQeVnVLuodMoPp7P7TR\n\
             1htX5n2VnkHh22xDyoJ8C/ZQKiSNqQfXvh83judf4RVr9exJCud8Uvgip6aVZTaPrJHVjQhMCp/d\n\
             EnGvqg0oN5OVkM2qqAXvA0teKUDhgNM71sDBVBCGXxNOR2bpbD1iM4dnuT0ey4L+loXEHTL0fqMe\n\
             UcEi2asgImnlNakwenDzz0x57aBwyq3AspCFGB1ncX4yYCr/OaCcS5OKi/00WH+wNQU3",
            "QX/YEpG0gDsmhEpCdWhsxDzsfVE=",
        ),
        (
            256,
            "qwGf2ESubE5jOUHHyc94ORczFYYbc2OmEzo+hBIyzJiNwAzC8PvJqtTzwkWkSslgHFGWQZR2BV5+\n\
             uYTrYT7HVwRM40vqfj0dBgeDENyTenIOL1LHkjtDKoXEnQ0mXAHoJ8PjbNC93zi5TovVRXTNzfGE\n\
             s5dpWVqxUzb5lc7dwkyvOluBw482mQ4xrzYyIY1t+//OrNi1ObGXuUw2jBQOFfJVj2Y6BOyYmfB1\n\
             y36eBxi3zxeG5d5NYjm2GSh6e08QMAwu3zrINcqIzLOuNIiGXBtl7DjKt7b5wqi4oFiRpZsCyx2s\n\
             mhSrdrtK/CkdU6nDN+34vSR/M8rZpWQdBE7a8g==",
            "WYT9JY3JIo/pEBp+tIM6Gt2nyTM=",
        ),
        (
            333,
            "w0LGhqU1WXFbdavqDE4kAjEzWLGGzmTNikzqnsiXHx2KRReKVTxkv27u3UcEz9+lbMvYl4xFf2Z4\n\
             aE1xRBBNd1Ke5C0zToSaYw5o4B/7X99nKK2/XaUX1byLow2aju2XJl2OpKpJg+tSJ2fmjIJTkfuY\n\
             Uz574dFX6/VXxSxwGH/xQEAKS5TCsBK3CwnuG1p5SAsQq3gGVozDWyjEBcWDMdy8/AIFrj/y03Lf\n\
             c/RNRCQTAfZbnf2QwV7sluw4fH3XJr07UoD0YqN+7XZzidtrwqMY26fpLZnyZjnBEt1FAZWO7RnK\n\
             G5asg8xRk9YaDdedXdQSJAOy6bWEWlABj+tVAigBxavaluUH8LOj+yfCFldJjNLdi90fVHkUD/m4\n\
             Mr5OtmupNMXPwuG3EQlqWUVpQoYpUYKLsk7a5Mvg6UFkiH596y5IbJEVCI1Kb3D1",
            "e3+wo77iKcILiZegnzyUNcjCdoQ=",
        ),
    ];

    /// Content of the provider fixtures (testkit/fixtures/README.md, "Hashes are real"): the
    /// line `"<unit>\n"` repeated and cut to `size` bytes.
    fn fixture_content(unit: &str, size: usize) -> Vec<u8> {
        let line = format!("{unit}\n");
        line.bytes().cycle().take(size).collect()
    }

    /// (unit, size, md5, sha1, sha256, dropbox, quickXorHash base64) from the fixture README.
    const FIXTURE_HASHES: &[(&str, usize, &str, &str, &str, &str, &str)] = &[
        (
            "factory-line.qsim",
            48213,
            "80f04d187565e0859384366ef0e35af1",
            "f56e4f9049be25e44cc4880f82f6623a51ef52f0",
            "8a2c74a6299b75e7703bebb641d0d4c0aea02e0f56e47631d28c1659c5f1f4ee",
            "33bb8ecab82ab0c39912a1539a84a213ba3a5f8d14b6038183d764e2787b0370",
            "edxPdJJ20CYapdvD8N3NiyzE6Pw=",
        ),
        (
            "factory-line.qsim v2",
            49877,
            "f8da00468c2048e1e5a21d09e3714f3a",
            "712342dba881d11a12648548ce3899607b4371d2",
            "9af00cb96ae21ccd3b72d5be8b0dbd97df9dd33b6c75447f99dacf7dd435dbc8",
            "bc786784c479622f7ff963dd7a11586e29c0b8d2a5712900ee461cf90fab18c0",
            "VfT2/wVCO1V3UO+RVdd7Ujsh0yE=",
        ),
        (
            "throughput-results.csv",
            7412,
            "1571e51f399add6f27dbc39f0bb6ba1f",
            "7f72b56b5b29a8f5df458d66b44f301ffa933afe",
            "7fc742955599a76c4a8dec2d5b7af9c700022b6985082257a293132bc68b0b9b",
            "447df9e8bbdc8f9c1badd0c01d6db1caa34d9494e870afec599ce3283d713b7c",
            "oYpTWig+smcuF2/P6raVVDutUTQ=",
        ),
        (
            "warehouse-layout.qsim",
            15987,
            "16529072aad2cfdf076030cd91a492cd",
            "56e9a701bcd7b537cfcf8fc54df81b7ca281c0ff",
            "36472dbc0f89a3fab61fd514606dd1c97102dbb844fe44391c60c9c8c87c9648",
            "2efa3f789da31bc24f6edc5dc6be5f5e9d79ad2aa9c02b320e13eec6db709710",
            "akmF6DBDo0IXbvr1E1/4SS8ti2E=",
        ),
        (
            "baseline.qsim",
            20480,
            "b831c1bc359ce8d39ddf2a2d9cce54b7",
            "86b63575aad7c50a5e55d3c305b65c00a7a99d15",
            "f10b3c3798e7db3336d9a66a934a74cef00f8dcf29d34378c2b80b313f15e456",
            "40119745fcce93211aa36a3126c173940c75e759e76314af252e66193b4a90e1",
            "VpYzHIbjRNF135dlSep+mqrSVFk=",
        ),
        (
            "line-2.qsim",
            26_214_400,
            "c74548164529e8d7a1c148dda5f07e32",
            "d658e5901505604357c8a5a9d11bf49483261f3e",
            "81bd6ca39f24698482eba5730b7fc9c03984b5639b56de24de1dfdce8ebc807b",
            "91a1cd5896a2bf01906abbd41259e08f1cacdf9e32f18eb9bb5c63e5d665a67b",
            "ipees/zEOUpNwnsWNEoHQaN46Tk=",
        ),
    ];

    #[test]
    fn each_provider_maps_to_its_stored_algorithm() {
        // Arrange
        let expected = [
            (ProviderType::OneDrive, HashAlg::QuickXor, "quickxor", 40),
            (ProviderType::SharePoint, HashAlg::QuickXor, "quickxor", 40),
            (ProviderType::GDrive, HashAlg::Md5, "md5", 32),
            (ProviderType::Dropbox, HashAlg::Dropbox, "dropbox", 64),
            (ProviderType::Box, HashAlg::Sha1, "sha1", 40),
        ];
        assert_eq!(expected.len(), ProviderType::ALL.len(), "every provider is listed");

        for (provider, alg, name, hex_len) in expected {
            // Act
            let got = HashAlg::for_provider(provider);

            // Assert
            assert_eq!(got, alg, "{provider}");
            assert_eq!(got.name(), name);
            assert_eq!(got.hex_len(), hex_len);
            assert_eq!(digests_whole(got, b"x").provider.len(), hex_len, "{provider}: digest length");
        }
    }

    #[test]
    fn quickxor_matches_every_rclone_vector_copied_here() {
        for (size, input, expected) in RCLONE_VECTORS {
            // Arrange
            let input = b64(input);
            assert_eq!(input.len(), *size, "vector {size} decodes to its size");

            // Act
            let got = quickxor_b64(&input);

            // Assert
            assert_eq!(got, *expected, "rclone vector of size {size}");
        }
    }

    #[test]
    fn quickxor_gives_the_same_hash_whatever_the_block_size_of_the_writes() {
        for (size, input, expected) in RCLONE_VECTORS {
            let input = b64(input);
            // rclone's TestQuickXorHashByBlock sizes, plus 159/160/161 around one lane round.
            for block in [1, 2, 4, 7, 8, 16, 32, 64, 128, 159, 160, 161, 256, 512] {
                // Arrange
                let mut h = QuickXorHash::new();

                // Act
                for piece in input.chunks(block) {
                    h.update(piece);
                }
                let got = base64::engine::general_purpose::STANDARD.encode(h.finish());

                // Assert
                assert_eq!(got, *expected, "size {size} in blocks of {block}");
            }
        }
    }

    #[test]
    fn every_algorithm_matches_the_fixture_readme_values_for_the_synthetic_files() {
        for (unit, size, md5, sha1, _sha256, dropbox, quickxor) in FIXTURE_HASHES {
            // Arrange
            let content = fixture_content(unit, *size);
            let quickxor_hex =
                normalize(HashAlg::QuickXor, quickxor).expect("fixture quickXorHash is base64 of 20 bytes");
            let expected = [
                (HashAlg::Md5, *md5),
                (HashAlg::Sha1, *sha1),
                (HashAlg::Dropbox, *dropbox),
                (HashAlg::QuickXor, &quickxor_hex),
            ];

            for (alg, provider) in expected {
                // Act
                let got = digests_whole(alg, &content);

                // Assert
                assert_eq!(got.provider, provider, "{unit}: {}", alg.name());
                assert_eq!(got.size, *size as u64, "{unit}: size");
            }
        }
    }

    #[test]
    fn block_threads_follow_the_cpus_and_on_lambda_the_cpu_time_its_memory_buys() {
        // Arrange: (CPUs seen, Lambda memory in MB) -> threads.
        let cases = [
            ((1, None), 1),
            ((2, None), 2),
            ((16, None), MAX_BLOCK_THREADS),
            // The sync worker's 1,024 MB is under one vCPU of time, though it sees two.
            ((2, Some(1_024)), 1),
            ((2, Some(1_769)), 1),
            ((2, Some(1_770)), 2),
            ((6, Some(10_240)), MAX_BLOCK_THREADS),
            ((6, Some(5_307)), 3),
            ((2, Some(0)), 1),
        ];

        for ((cpus, memory), expected) in cases {
            // Act
            let got = threads_for(cpus, memory);

            // Assert
            assert_eq!(got, expected, "{cpus} CPUs, {memory:?} MB");
        }
    }

    #[test]
    fn dropbox_hash_of_empty_content_is_sha256_of_the_empty_string() {
        // Arrange
        let h = ContentHasher::new(HashAlg::Dropbox);
        let on_threads = DropboxBlocks::new(2);

        // Act
        let got = h.finish();
        let got_on_threads = on_threads.finish();

        // Assert
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(got.provider, empty);
        assert_eq!(got.size, 0);
        assert_eq!(got_on_threads, got, "block threads, no block");
    }

    #[test]
    fn dropbox_hash_closes_blocks_at_exactly_four_mebibytes_however_the_content_arrives() {
        // Arrange: expectations from sha2 directly, block by block.
        let mut rng = SplitMix(0xd80b);
        let content = rng.bytes(2 * DROPBOX_BLOCK + 3);
        let sha = |b: &[u8]| Sha256::digest(b);
        let of_blocks = |blocks: &[&[u8]]| {
            let mut joined = Vec::new();
            for b in blocks {
                joined.extend_from_slice(&sha(b));
            }
            hex::encode(sha(&joined))
        };
        let one = &content[..DROPBOX_BLOCK];
        let cases = [
            (1, of_blocks(&[&content[..1]])),
            (DROPBOX_BLOCK - 1, of_blocks(&[&content[..DROPBOX_BLOCK - 1]])),
            // Exactly one block: no empty second block after it.
            (DROPBOX_BLOCK, of_blocks(&[one])),
            (DROPBOX_BLOCK + 1, of_blocks(&[one, &content[DROPBOX_BLOCK..DROPBOX_BLOCK + 1]])),
            (2 * DROPBOX_BLOCK, of_blocks(&[one, &content[DROPBOX_BLOCK..2 * DROPBOX_BLOCK]])),
            (
                2 * DROPBOX_BLOCK + 3,
                of_blocks(&[one, &content[DROPBOX_BLOCK..2 * DROPBOX_BLOCK], &content[2 * DROPBOX_BLOCK..]]),
            ),
        ];
        assert_ne!(cases[2].1, hex::encode(sha(one)), "the block hash is not the plain SHA-256");

        for (len, expected) in cases {
            let data = &content[..len];
            // Odd-sized chunks that straddle the block boundaries.
            for chunk in [1_000_003, DROPBOX_BLOCK + 7] {
                // Act
                let mut h = ContentHasher::new(HashAlg::Dropbox);
                for piece in data.chunks(chunk) {
                    h.update(piece);
                }
                let got = h.finish();
                let on_threads: Vec<Digests> = (2..=3)
                    .map(|threads| {
                        let mut h = DropboxBlocks::new(threads);
                        for piece in data.chunks(chunk) {
                            h.update(bytes::Bytes::copy_from_slice(piece));
                        }
                        h.finish()
                    })
                    .collect();

                // Assert
                assert_eq!(got.provider, expected, "{len} bytes in chunks of {chunk}");
                assert_eq!(got.size, len as u64);
                for (threads, parallel) in (2..).zip(on_threads) {
                    assert_eq!(parallel, got, "{len} bytes in chunks of {chunk}, blocks on {threads} threads");
                }
            }
        }
    }

    #[test]
    fn every_hasher_gives_the_same_result_for_random_splits_of_the_input() {
        // Arrange
        let mut rng = SplitMix(0x5eed);
        // Sizes around the QuickXor lane round (160); sizes around the Dropbox block (4 MiB)
        // matter only to the Dropbox hash (and are slow in a debug build).
        let small = [0, 1, 159, 160, 161, 4095, 100_000];
        let cases = small
            .into_iter()
            .flat_map(|size| HashAlg::ALL.map(|alg| (alg, size)))
            .chain([DROPBOX_BLOCK, DROPBOX_BLOCK + 161].map(|size| (HashAlg::Dropbox, size)));
        for (alg, size) in cases {
            let content = rng.bytes(size);
            let expected = digests_whole(alg, &content);
            for _ in 0..3 {
                // Act
                let got = digests_split(alg, &content, &mut rng);

                // Assert
                assert_eq!(got, expected, "{} over {size} bytes", alg.name());
            }
        }
    }

    #[test]
    fn xor_rounds_folds_every_byte_into_the_lane_of_its_position() {
        // Arrange: lanes already holding earlier input, and 0 to 5 whole rounds of new input.
        let mut rng = SplitMix(0x160);
        for rounds in 0..=5 {
            let before: [u8; QUICKXOR_WIDTH_BITS] = rng.bytes(QUICKXOR_WIDTH_BITS).try_into().expect("160 bytes");
            let data = rng.bytes(rounds * QUICKXOR_WIDTH_BITS);
            let mut expected = before;
            for (i, byte) in data.iter().enumerate() {
                expected[i % QUICKXOR_WIDTH_BITS] ^= byte;
            }
            let mut lanes = before;

            // Act
            xor_rounds(&mut lanes, &data);

            // Assert
            assert_eq!(lanes, expected, "{rounds} rounds");
        }
    }

    #[test]
    fn quickxor_base64_from_graph_normalises_to_forty_lowercase_hex_digits() {
        // Arrange: the 20-byte digest of rclone's size-21 vector, as Graph would send it.
        let graph = "LR2Z0PjuRYGKQB/mhQAuMrAGZbQ=";

        // Act
        let stored = normalize(HashAlg::QuickXor, graph);

        // Assert
        let expected = hex::encode(b64(graph));
        assert_eq!(stored.as_deref(), Some(expected.as_str()));
        assert_eq!(expected.len(), 40);
        assert_eq!(normalize(HashAlg::QuickXor, &expected), Some(expected.clone()), "normalising twice");
        assert_eq!(normalize(HashAlg::QuickXor, &expected.to_uppercase()), Some(expected), "upper-case hex");
    }

    #[test]
    fn hex_hashes_are_lowercased_and_checked_for_length_and_digits() {
        // Arrange
        let good = [
            (HashAlg::Md5, "9E107D9D372BB6826BD81D3542A419D6"),
            (HashAlg::Sha1, "F56E4F9049BE25E44CC4880F82F6623A51EF52F0"),
            (HashAlg::Dropbox, "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"),
        ];

        for (alg, value) in good {
            // Act
            let got = normalize(alg, value);

            // Assert
            assert_eq!(got, Some(value.to_ascii_lowercase()), "{}", alg.name());
        }
    }

    #[test]
    fn malformed_provider_hashes_normalise_to_none() {
        // Arrange
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        let bad = [
            (HashAlg::Md5, ""),
            (HashAlg::Md5, &md5[1..]),
            (HashAlg::Md5, "9e107d9d372bb6826bd81d3542a419d6a"),
            (HashAlg::Md5, "9e107d9d372bb6826bd81d3542a419dg"),
            (HashAlg::Md5, " 9e107d9d372bb6826bd81d3542a419d"),
            (HashAlg::Md5, "+e107d9d372bb6826bd81d3542a419d6"),
            (HashAlg::Sha1, md5),
            (HashAlg::Dropbox, "f56e4f9049be25e44cc4880f82f6623a51ef52f0"),
            // Non-ASCII of the right byte length is not hex.
            (HashAlg::Sha1, "é56e4f9049be25e44cc4880f82f6623a51ef52f"),
            (HashAlg::QuickXor, ""),
            (HashAlg::QuickXor, "not base64 at all"),
            // 19 bytes, 21 bytes, missing padding, URL-safe alphabet.
            (HashAlg::QuickXor, "LR2Z0PjuRYGKQB/mhQAuMrAGZQ=="),
            (HashAlg::QuickXor, "LR2Z0PjuRYGKQB/mhQAuMrAGZbQA"),
            (HashAlg::QuickXor, "LR2Z0PjuRYGKQB/mhQAuMrAGZbQ"),
            (HashAlg::QuickXor, "LR2Z0PjuRYGKQB_mhQAuMrAGZbQ="),
            (HashAlg::QuickXor, "2d1d99d0f8ee45818a401fe685002e32b00665bz"),
        ];

        for (alg, value) in bad {
            // Act
            let got = normalize(alg, value);

            // Assert
            assert_eq!(got, None, "{} {value:?}", alg.name());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_alongside_passes_every_chunk_through_and_hashes_what_it_passed() {
        use futures_util::StreamExt as _;
        // Arrange: more chunks than the queue holds, an error in the middle.
        let mut rng = SplitMix(0xa1d5);
        let mut chunks: Vec<Vec<u8>> = (0..3 * HASH_QUEUE_CHUNKS).map(|i| rng.bytes(1 + i * 977)).collect();
        // One chunk longer than two Dropbox blocks, so blocks close inside and across chunks.
        chunks.insert(10, rng.bytes(2 * DROPBOX_BLOCK + 5));
        let mut items: Vec<Result<bytes::Bytes, &str>> =
            chunks.iter().map(|c| Ok(bytes::Bytes::from(c.clone()))).collect();
        items.insert(5, Err("a broken chunk"));
        let whole: Vec<u8> = chunks.concat();

        for alg in HashAlg::ALL {
            let expected = digests_whole(alg, &whole);
            // Dropbox's blocks on the hashing thread (1) or on threads of their own (2, 3); the
            // other algorithms take no thread count.
            let thread_counts = if alg == HashAlg::Dropbox { 1..=3 } else { 1..=1 };
            for threads in thread_counts {
                // Act
                let (body, hash) = HashAlongside::tap_with(alg, threads, futures_util::stream::iter(items.clone()));
                let passed: Vec<Result<bytes::Bytes, &str>> = body.collect().await;
                let got = hash.finish().await.expect("the hashing thread ends with the stream");

                // Assert
                let what = format!("{} on {threads} threads", alg.name());
                assert_eq!(passed, items, "{what}: the stream passes through unchanged");
                assert_eq!(got, expected, "{what}: the hash of the good chunks");
            }
        }
    }
}
