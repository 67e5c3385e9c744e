"""Cold-start measurement behind scripts/bench-lambda (see there).

Each binary starts cold, ROUNDS times in each of four settings, and is timed from process start
to its first invocation's answer:
  - the configuration secret read from moto over plain HTTP or over HTTPS (moto serving TLS with
    a certificate made here);
  - on the whole CPU, or held to 15% of one core (3 ms per 20 ms period, cgroup CPU quota): a
    256 MB Lambda function gets 256/1769 of a vCPU, 14.5%.
The binaries run in an environment like Lambda's, not this machine's: only the variables Lambda
sets (runtime API, function name, memory, region, credentials, PATH, LANG, TZ) and the
template's. Where a client trusts the platform's roots, SSL_CERT_FILE names a bundle of this
machine's system roots plus the bench CA (on Amazon Linux 2023 those roots are one bundle of the
same Mozilla set, about 140 certificates); AWS_CA_BUNDLE names Amazon Trust Services' roots (the
functions' compiled-in ones, shared/src/aws) plus the bench CA, so the functions parse one more
root than in production and nothing in the product changes for the bench.
CPU is the process's user + system time (wait4), which the 20 ms periods of the quota do not
blur. Peak RSS is the binary's VmHWM in the HTTPS, whole-CPU setting. Rounds interleave binaries
and settings so the machine's noise spreads over all of them. After the table, `tls-handshake`
(bench/lambda-hello) counts the CPU of a TLS client handshake on the SQL Server pool's stack,
and of the root store tiberius builds from the platform's roots for each new connection.

Arguments: ROUNDS ENTRY...; an ENTRY is a binary name (target/lambda/NAME/bootstrap) or
NAME@VARIANT (target/bench-VARIANT/lambda/NAME/bootstrap, labelled "NAME, VARIANT")."""
import base64, datetime, ipaddress, json, os, signal, socket, ssl, statistics, subprocess, sys, tempfile, time

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROUNDS = int(sys.argv[1])
ENTRIES = sys.argv[2:]
# tls-handshake is not a function: it runs after the table, not in the cold-start rounds.
COLD = [e for e in ENTRIES if e.split("@")[0] != "tls-handshake"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PATH"] = os.path.join(ROOT, ".venv/bin") + os.pathsep + os.environ["PATH"]
SETTINGS = [("http", False), ("https", False), ("http", True), ("https", True)]
QUOTA_US, PERIOD_US = 3000, 20000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def name_of(entry):
    return entry.split("@")[0]


VARIANTS = {"jitter": "aws-lc jitter entropy on"}


def label_of(entry):
    name, _, variant = entry.partition("@")
    return f"{name} ({VARIANTS.get(variant, variant)})" if variant else name


def bootstrap_of(entry):
    name, _, variant = entry.partition("@")
    base = os.path.join(ROOT, "target", f"bench-{variant}" if variant else "")
    return os.path.join(base, "lambda", name, "bootstrap")


def event_for(name):
    name = name.removesuffix("-ring")
    folder = os.path.join(ROOT, "events", name)
    if not os.path.isdir(folder):
        return os.path.join(ROOT, "events", "sync-errors", "list.json")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".json"))
    for preferred in ("list.json", "scheduled.json", "start.json", "get.json"):
        if preferred in files:
            return os.path.join(folder, preferred)
    return os.path.join(folder, files[0])


def make_tls(folder):
    """A CA and a certificate for 127.0.0.1 signed by it; returns (ca, cert, key) paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    span = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=2))

    def cert(subject, issuer, public_key, signing_key, ca, extra=()):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
             .serial_number(x509.random_serial_number()).not_valid_before(span[0]).not_valid_after(span[1])
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for ext in extra:
            b = b.add_extension(ext, critical=False)
        return b.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quodsi bench CA")])
    ca_cert = cert(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key.public_key(), ca_key,
                False, [x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                     x509.DNSName("localhost")])])
    paths = [os.path.join(folder, n) for n in ("ca.pem", "cert.pem", "key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def bundles(folder, ca):
    """(platform, aws): PEM bundles of this machine's system roots plus the bench CA, and of the
    functions' compiled-in Amazon Trust Services roots plus the bench CA; and the number of
    system roots."""
    system = ssl.get_default_verify_paths().cafile
    if not system or not os.path.isfile(system):
        import certifi  # requests' bundle (moto needs requests): the same Mozilla set
        system = certifi.where()
    with open(system) as f:
        system_pem = f.read()
    with open(os.path.join(ROOT, "shared/src/aws/amazon-trust-services-roots.pem")) as f:
        amazon_pem = f.read()
    with open(ca) as f:
        ca_pem = f.read()
    out = []
    for name, pem in (("platform.pem", system_pem), ("aws.pem", amazon_pem)):
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(pem.rstrip("\n") + "\n" + ca_pem)
        out.append(path)
    return out[0], out[1], system_pem.count("BEGIN CERTIFICATE")


def quota_group():
    """A cgroup holding its processes to QUOTA_US of CPU per PERIOD_US; returns its procs file."""
    v2 = "/sys/fs/cgroup/cgroup.controllers"
    try:
        if os.path.exists(v2):
            group = "/sys/fs/cgroup/quodsi-bench"
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, "cpu.max"), "w") as f:
                f.write(f"{QUOTA_US} {PERIOD_US}")
        else:
            group = "/sys/fs/cgroup/cpu/quodsi-bench"
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, "cpu.cfs_period_us"), "w") as f:
                f.write(str(PERIOD_US))
            with open(os.path.join(group, "cpu.cfs_quota_us"), "w") as f:
                f.write(str(QUOTA_US))
    except OSError as e:
        raise SystemExit(f"cannot make a CPU-quota cgroup ({e}): run as root or in a delegated cgroup")
    return group


def joiner(group):
    procs = os.path.join(group, "cgroup.procs")

    def join():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    return join


work = tempfile.mkdtemp()
procs = []
group = None
try:
    ca, cert_pem, key_pem = make_tls(work)
    platform_bundle, aws_bundle, system_roots = bundles(work, ca)
    group = quota_group()
    key = lambda: base64.b64encode(os.urandom(32)).decode()
    db = os.path.join(work, "quodsi.db")
    doc = {"database_url": "sqlite:" + db, "token_keys": {"b1": key()}, "active_token_key": "b1", "oauth_state_key": key(),
           "oauth_redirect_base_url": "https://api.example.com", "return_to_allowlist": ["https://app.example.com"]}
    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
             "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(creds)
    endpoints, arns = {}, {}
    for scheme in ("http", "https"):
        port = free_port()
        tls_args = ["-c", cert_pem, "-k", key_pem] if scheme == "https" else []
        procs.append(subprocess.Popen([os.path.join(ROOT, ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port),
                                       *tls_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(port)
        endpoints[scheme] = f"{scheme}://127.0.0.1:{port}"
        sm = boto3.client("secretsmanager", endpoint_url=endpoints[scheme], verify=ca)
        arns[scheme] = sm.create_secret(Name="quodsi/bench", SecretString=json.dumps(doc))["ARN"]
    emu_port = free_port()
    procs.append(subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(emu_port)],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(emu_port, 300)

    # Lambda's environment, not this machine's (whose SSL_CERT_DIR, for one, names a directory
    # of 146 certificate files that the platform's roots would read at every start).
    base_env = dict(creds, PATH="/usr/local/bin:/usr/bin:/bin", LANG="en_US.UTF-8", TZ=":UTC",
                    SSL_CERT_FILE=platform_bundle, AWS_CA_BUNDLE=aws_bundle,
                    AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{emu_port}/.rt",
                    AWS_LAMBDA_FUNCTION_NAME="_", AWS_LAMBDA_FUNCTION_VERSION="1",
                    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", RUST_LOG="warn")
    env_of = {s: dict(base_env, AWS_ENDPOINT_URL=endpoints[s], QUODSI_CONFIG_SECRET_ARN=arns[s]) for s in endpoints}
    times = {(e, s): [] for e in COLD for s in SETTINGS}
    cpu = {(e, s): [] for e in COLD for s in SETTINGS}
    rss = {e: [] for e in COLD}
    # Round 0 is a warm-up, not counted: it migrates the database (production's SQL Server is
    # migrated by the deploy, not by a cold start) and brings the binaries into the page cache.
    for round_no in range(ROUNDS + 1):
        for setting in SETTINGS:
            scheme, quota = setting
            for e in COLD:
                invoke = subprocess.Popen(["cargo", "lambda", "invoke", "_", "-A", "127.0.0.1", "-P", str(emu_port),
                                           "--data-file", event_for(name_of(e))], cwd=ROOT, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE)
                time.sleep(0.3)  # the invocation is queued before the function starts
                t0 = time.perf_counter()
                fn = subprocess.Popen([bootstrap_of(e)], env=env_of[scheme], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, preexec_fn=joiner(group) if quota else None)
                out, err = invoke.communicate(timeout=60)
                t1 = time.perf_counter()
                # VmHWM is the binary's own peak (exec starts a fresh address space; wait4's
                # ru_maxrss would also count the Python parent's pages copied by fork).
                with open(f"/proc/{fn.pid}/status") as status_file:
                    hwm_kib = next(int(l.split()[1]) for l in status_file if l.startswith("VmHWM:"))
                fn.send_signal(signal.SIGKILL)
                _, status, usage = os.wait4(fn.pid, 0)
                fn.returncode = status
                # A start that failed answers an errorType or a 5xx; a 404 for the event's made-up
                # ids is an answer like any other.
                compact = out.replace(b" ", b"")
                failed = b'"errorType"' in compact or b'"statusCode":5' in compact
                if invoke.returncode != 0 or failed:
                    raise SystemExit(f"{e} ({scheme}, quota={quota}): invocation failed: "
                                     f"{out.decode()[-300:]} {err.decode()[-500:]}")
                if round_no > 0:
                    times[(e, setting)].append((t1 - t0) * 1000)
                    cpu[(e, setting)].append((usage.ru_utime + usage.ru_stime) * 1000)
                    if setting == ("https", False):
                        rss[e].append(hwm_kib / 1024)

    med = lambda e, s: statistics.median(times[(e, s)])
    size = lambda e: os.path.getsize(bootstrap_of(e)) / 2**20
    cfg = "lambda-hello-config"
    slow = ("https", True)
    cpu_med = lambda e, s: statistics.median(cpu[(e, s)])
    print(f"Median of {ROUNDS} cold starts (ms), process start to the first answer; CPU 15% = "
          f"{QUOTA_US} us per {PERIOD_US} us; CPU = the process's user + system time, HTTPS, whole "
          f"CPU; platform roots: {system_roots} system certificates + the bench CA.\n")
    print("| function | size (MiB) | HTTP, full CPU | HTTPS, full CPU | HTTP, 15% | HTTPS, 15% "
          f"| x {cfg} (HTTPS, 15%) | CPU (ms) | x {cfg} | peak RSS (MiB) | x {cfg} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in COLD:
        cells = " | ".join(f"{med(e, s):.1f}" for s in SETTINGS)
        m = statistics.median(rss[e])
        c = cpu_med(e, ("https", False))
        print(f"| {label_of(e)} | {size(e):.1f} | {cells} | {med(e, slow) / med(cfg, slow):.2f} "
              f"| {c:.1f} | {c / cpu_med(cfg, ('https', False)):.2f} "
              f"| {m:.1f} | {m / statistics.median(rss[cfg]):.2f} |")
    print("\nall samples (ms): " + json.dumps({f"{label_of(e)} {s[0]}{' 15%' if s[1] else ''}": [round(x, 1) for x in v]
                                               for (e, s), v in times.items()}))
    print("\nCPU samples (ms): " + json.dumps({f"{label_of(e)} {s[0]}{' 15%' if s[1] else ''}": [round(x, 1) for x in v]
                                               for (e, s), v in cpu.items()}))

    # The SQL Server pool's TLS login: the CPU of the handshake itself, first in the process and
    # after, against moto's TLS listener, with each tls-handshake build among the entries.
    port = endpoints["https"].rsplit(":", 1)[1]
    print("\n| tls-handshake build | first handshake CPU (ms) | later handshakes, median CPU (ms) "
          "| root store from the platform's roots, median CPU (ms) |")
    print("|---|---:|---:|---:|")
    for e in ENTRIES:
        if name_of(e) != "tls-handshake":
            continue
        out = subprocess.run([bootstrap_of(e), f"127.0.0.1:{port}", ca, "20"], check=True, capture_output=True,
                             env=dict(base_env))
        r = json.loads(out.stdout)
        print(f"| {label_of(e)} | {r['first_ms']:.2f} | {r['median_ms']:.2f} | {r['platform_roots_ms']:.2f} "
              f"({r['platform_roots']} roots) |")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    if group:
        try:
            os.rmdir(group)
        except OSError:
            pass
