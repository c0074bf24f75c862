//! The same processor on the Redis deployments users run: a 3-master Redis Cluster (every script
//! touches one slot thanks to the partition hash tag), an ACL user with a password, and TLS with
//! a CA made here.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(90);

/// How long the master stays down.
const MASTER_DOWN: Duration = Duration::from_secs(6);

/// Rewrites the `[redis]` section of a harness config.
fn with_redis(config: &Path, url: &str, extra: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("url = \"redis://").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let text = format!("{}url = \"{url}\"\n{extra}{}", &text[..start], &text[end..]);
    std::fs::write(config, text).unwrap();
}

/// `n` silent alerts `<prefix>-NN` through `processors`: every visit breach arrives, no CROSSSLOT.
async fn silent_alerts_fire(env: &Env, processors: &[&Processor], prefix: &str, n: usize) {
    for p in processors {
        p.wait_ready(WITHIN);
    }
    let alerts = produce_silent(&env.broker.producer(), &env.topics.alerts, prefix, n).await;
    let want = breach_ids(&alerts, &["visit"]);
    collect_all(&env.escalations(), WITHIN, &want, || {
        processors.iter().map(|p| p.log_text()).collect()
    });
    let logs: String = processors.iter().map(|p| p.log_text()).collect();
    assert!(!logs.contains("CROSSSLOT"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processors_on_a_three_master_redis_cluster_survive_a_master_restart() {
    let env = Env::new("cluster", 4, FAST_SLA);
    let mut nodes = Redis::cluster_nodes(env.dir.path(), 3);
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();

    let mut processors: Vec<Processor> = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let config = env.config(port);
        with_redis(
            &config,
            &format!("redis://{}", addrs[0]),
            "cluster = true\n",
        );
        let log = env.dir.path().join(format!("cluster-{port}.log"));
        processors.push(Processor::start(&config, port, &log));
    }
    let refs: Vec<&Processor> = processors.iter().collect();
    silent_alerts_fire(&env, &refs, "CL", 6).await;
    // The state is spread over the masters by partition tag.
    let used = nodes
        .iter()
        .filter(|n| {
            redis::cmd("DBSIZE")
                .query::<i64>(&mut n.client().get_connection().unwrap())
                .unwrap()
                > 0
        })
        .count();
    assert!(used >= 2, "partitions' keys land on several masters");

    // A master holding partition state goes down while new alerts' clocks come due, and comes
    // back from its AOF with its nodes.conf (same node id and slots).
    let victim = (0..nodes.len())
        .max_by_key(|&i| {
            redis::cmd("DBSIZE")
                .query::<i64>(&mut nodes[i].client().get_connection().unwrap())
                .unwrap()
        })
        .unwrap();
    let (victim_dir, victim_port) = (Redis::node_dir(env.dir.path(), victim), nodes[victim].port);
    drop(nodes.remove(victim));
    let during = produce_silent(&env.broker.producer(), &env.topics.alerts, "CLR", 6).await;
    // Longer than the visit stage (4 s): its warnings and first breaches come due while down.
    std::thread::sleep(MASTER_DOWN);
    for p in &mut processors {
        assert!(
            p.proc.child.try_wait().unwrap().is_none(),
            "up while a master is down"
        );
    }
    nodes.push(Redis::start_on(&victim_dir, victim_port, &cluster_node()));
    let want = breach_ids(&during, &["visit", "meet"]);
    collect_all(&env.escalations(), WITHIN, &want, || {
        processors.iter().map(|p| p.log_text()).collect()
    });
    assert!(
        processors
            .iter()
            .map(|p| p.metric("fraud_sla_redis_errors_total", &[]))
            .sum::<f64>()
            > 0.0,
        "the restart was seen"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acl_user_with_a_password_and_a_wrong_password_is_not_ready() {
    let env = Env::new("acl", 1, FAST_SLA);
    let dir = env.dir.path().join("acl");
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start_with(
        &dir,
        &[
            "--save",
            "",
            "--user",
            "default",
            "off",
            "--user",
            "fraud",
            "on",
            ">s3cret-pw",
            "~*",
            "&*",
            "+@all",
        ],
    );
    let port = free_port();
    let config = env.config(port);
    let log = env.dir.path().join("acl.log");
    // The password comes from the environment, as operators keep it out of files.
    let url = format!("redis://fraud:s3cret-pw@127.0.0.1:{}", redis.port);
    let p = Processor::start_with_env(&config, port, &log, &[("FRAUD_SLA_REDIS_URL", &url)]);
    silent_alerts_fire(&env, &[&p], "ACL", 1).await;
    assert!(
        !p.log_text().contains("s3cret-pw"),
        "the password is never logged"
    );

    let wrong_port = free_port();
    let wrong = env.config(wrong_port);
    let bad_url = format!("redis://fraud:wrong-pw@127.0.0.1:{}", redis.port);
    let bad = Processor::start_with_env(
        &wrong,
        wrong_port,
        &env.dir.path().join("bad.log"),
        &[("FRAUD_SLA_REDIS_URL", &bad_url)],
    );
    wait_until(WITHIN, "the bad one serves /healthz", || {
        bad.get("/healthz").is_some_and(|(c, _)| c == 200)
    });
    assert_ne!(
        bad.get("/readyz").map(|(c, _)| c),
        Some(200),
        "never ready with a wrong password"
    );
    assert!(!bad.log_text().contains("wrong-pw"));
}

/// A CA, and a server certificate for 127.0.0.1 signed by it, made with openssl.
fn make_tls(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=fraud-sla test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_over_tls_with_a_private_ca() {
    let env = Env::new("tls", 1, FAST_SLA);
    let dir = env.dir.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    make_tls(&dir);
    let tls_port = free_port();
    let file = |name: &str| dir.join(name).display().to_string();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let args = [
        "--save",
        "",
        "--port",
        "0",
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ];
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--dir"])
        .arg(&dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _redis = Proc {
        child,
        name: "redis-tls".into(),
    };
    wait_until(Duration::from_secs(10), "redis TLS port", || {
        std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
    });

    let port = free_port();
    let config = env.config(port);
    with_redis(&config, &format!("rediss://127.0.0.1:{tls_port}"), "");
    // native-tls (OpenSSL) trusts the CA named by SSL_CERT_FILE.
    let p = Processor::start_with_env(
        &config,
        port,
        &env.dir.path().join("tls.log"),
        &[("SSL_CERT_FILE", &ca)],
    );
    silent_alerts_fire(&env, &[&p], "TLS", 1).await;
}
