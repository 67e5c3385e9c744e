"""Cold-start measurement behind scripts/bench-lambda (see there). For each binary, ROUNDS
times: queue an invocation at cargo-lambda's emulator (`--only-lambda-apis`), start the
binary, and time process start -> the invocation's answer; peak RSS is the binary's VmHWM.
Rounds interleave the binaries so the machine's noise spreads over all of them."""
import base64, json, os, signal, socket, statistics, subprocess, sys, tempfile, time

import boto3

ROUNDS = int(sys.argv[1])
BINS = sys.argv[2:]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PATH"] = os.path.join(ROOT, ".venv/bin") + os.pathsep + os.environ["PATH"]


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


def event_for(name):
    folder = os.path.join(ROOT, "events", name)
    if not os.path.isdir(folder):
        return os.path.join(ROOT, "events", "sync-errors", "list.json")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".json"))
    for preferred in ("list.json", "scheduled.json", "start.json", "get.json"):
        if preferred in files:
            return os.path.join(folder, preferred)
    return os.path.join(folder, files[0])


work = tempfile.mkdtemp()
procs = []
try:
    moto_port = free_port()
    procs.append(subprocess.Popen([os.path.join(ROOT, ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(moto_port)
    aws = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(aws)
    key = lambda: base64.b64encode(os.urandom(32)).decode()
    db = os.path.join(work, "quodsi.db")
    doc = {"database_url": "sqlite:" + db, "token_keys": {"b1": key()}, "active_token_key": "b1", "oauth_state_key": key(),
           "oauth_redirect_base_url": "https://api.example.com", "return_to_allowlist": ["https://app.example.com"]}
    arn = boto3.client("secretsmanager").create_secret(Name="quodsi/bench", SecretString=json.dumps(doc))["ARN"]
    emu_port = free_port()
    procs.append(subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(emu_port)],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(emu_port, 300)

    env = dict(os.environ, **aws, QUODSI_CONFIG_SECRET_ARN=arn, AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{emu_port}/.rt",
               AWS_LAMBDA_FUNCTION_NAME="_", AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
               RUST_LOG="warn")
    times = {b: [] for b in BINS}
    rss = {b: [] for b in BINS}
    # Round 0 is a warm-up, not counted: it migrates the database (production's SQL Server is
    # migrated by the deploy, not by a cold start) and brings the binaries into the page cache.
    for round_no in range(ROUNDS + 1):
        for b in BINS:
            invoke = subprocess.Popen(["cargo", "lambda", "invoke", "_", "-A", "127.0.0.1", "-P", str(emu_port),
                                       "--data-file", event_for(b)], cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
            time.sleep(0.3)  # the invocation is queued before the function starts
            t0 = time.perf_counter()
            fn = subprocess.Popen([os.path.join(ROOT, "target/lambda", b, "bootstrap")], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out, err = invoke.communicate(timeout=60)
            t1 = time.perf_counter()
            # VmHWM is the binary's own peak (exec starts a fresh address space; wait4's
            # ru_maxrss would also count the Python parent's pages copied by fork).
            with open(f"/proc/{fn.pid}/status") as status_file:
                hwm_kib = next(int(l.split()[1]) for l in status_file if l.startswith("VmHWM:"))
            fn.send_signal(signal.SIGKILL)
            fn.wait()
            if invoke.returncode != 0:
                raise SystemExit(f"{b}: invocation failed: {err.decode()[-500:]}")
            if round_no > 0:
                times[b].append((t1 - t0) * 1000)
                rss[b].append(hwm_kib / 1024)

    def med(d, b):
        return statistics.median(d[b])

    size = lambda b: os.path.getsize(os.path.join(ROOT, "target/lambda", b, "bootstrap")) / 2**20
    cfg = "lambda-hello-config" if "lambda-hello-config" in BINS else "lambda-hello"
    print(f"| function | size (MiB) | cold start, median of {ROUNDS} (ms) | x hello | x {cfg} | peak RSS (MiB) | x hello | x {cfg} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for b in BINS:
        t, m = med(times, b), med(rss, b)
        print(f"| {b} | {size(b):.1f} | {t:.1f} | {t / med(times, 'lambda-hello'):.2f} | {t / med(times, cfg):.2f} "
              f"| {m:.1f} | {m / med(rss, 'lambda-hello'):.2f} | {m / med(rss, cfg):.2f} |")
    print("\nall samples (ms): " + json.dumps({b: [round(x, 1) for x in v] for b, v in times.items()}))
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
