//! Real registries for the pull and push tests: Debian's `docker-registry` (distribution 2.8)
//! on a loopback port of its own with a storage directory of its own (never the package's own
//! service on :5000), plain, with htpasswd basic auth, with a token server of the harness for the
//! bearer flow, or with TLS from a test CA installed in a `certs.d` directory; and a proxy that
//! cuts a blob download once, to test resumption.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::*;

/// Debian's distribution 2.8 registry.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";
/// `htpasswd` of Debian's apache2-utils (bcrypt entries for the registry's basic auth).
pub const HTPASSWD: &str = "/usr/bin/htpasswd";
/// `openssl` (test CA, server certificate, token signatures).
pub const OPENSSL: &str = "/usr/bin/openssl";
/// The user every authenticated registry of the tests knows.
pub const REGISTRY_USER: &str = "ovl-user";
pub const REGISTRY_PASSWORD: &str = "ovl-secret-1";
/// The token server's service and issuer names, as the registry's config names them.
const TOKEN_SERVICE: &str = "ovl-test-registry";
const TOKEN_ISSUER: &str = "ovl-test-issuer";

/// True when running as root with the registry, htpasswd and openssl installed.
pub fn require_registry(test_name: &str) -> bool {
    require_root(test_name)
        && require_program(test_name, DOCKER_REGISTRY, "docker-registry")
        && require_program(test_name, HTPASSWD, "apache2-utils")
        && require_program(test_name, OPENSSL, "openssl")
}

/// How a registry authenticates its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryAuth {
    None,
    /// htpasswd basic auth of [`REGISTRY_USER`].
    Basic,
    /// The bearer token flow, tokens from the harness's token server for [`REGISTRY_USER`].
    Token,
    /// HTTPS with a certificate of a test CA (no authentication).
    Tls,
}

/// A running registry; killed when dropped.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    auth: RegistryAuth,
    token_server: Option<TokenServer>,
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new(OPENSSL)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Registry {
    /// Starts a registry below `dir` (created) and waits until `/v2/` answers.
    pub fn start(dir: &Path, auth: RegistryAuth) -> Registry {
        fs::create_dir_all(dir).expect("mkdir registry dir");
        let port = free_port();
        let mut extra = String::new();
        let mut token_server = None;
        match auth {
            RegistryAuth::None => {}
            RegistryAuth::Basic => {
                let output = Command::new(HTPASSWD)
                    .args(["-Bbn", REGISTRY_USER, REGISTRY_PASSWORD])
                    .output()
                    .expect("run htpasswd");
                assert!(output.status.success(), "htpasswd failed");
                fs::write(dir.join("htpasswd"), &output.stdout).expect("write htpasswd");
                extra.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: ovl-test\n    path: {}\n",
                    dir.join("htpasswd").display()
                ));
            }
            RegistryAuth::Token => {
                openssl(
                    dir,
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-keyout",
                        "token.key",
                        "-out",
                        "token.crt",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=ovl-test-token",
                    ],
                );
                let server = TokenServer::start(dir);
                extra.push_str(&format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.port,
                    dir.join("token.crt").display()
                ));
                token_server = Some(server);
            }
            RegistryAuth::Tls => {
                openssl(
                    dir,
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-keyout",
                        "ca.key",
                        "-out",
                        "ca.crt",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=ovl-test-ca",
                    ],
                );
                openssl(
                    dir,
                    &[
                        "req",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-keyout",
                        "server.key",
                        "-out",
                        "server.csr",
                        "-subj",
                        "/CN=127.0.0.1",
                    ],
                );
                fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
                    .expect("write san.ext");
                openssl(
                    dir,
                    &[
                        "x509",
                        "-req",
                        "-in",
                        "server.csr",
                        "-CA",
                        "ca.crt",
                        "-CAkey",
                        "ca.key",
                        "-CAcreateserial",
                        "-out",
                        "server.crt",
                        "-days",
                        "2",
                        "-extfile",
                        "san.ext",
                    ],
                );
                let certs = dir.join("certs.d").join(format!("127.0.0.1:{port}"));
                fs::create_dir_all(&certs).expect("mkdir certs.d");
                fs::copy(dir.join("ca.crt"), certs.join("ca.crt")).expect("install the CA");
                extra.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.join("server.crt").display(),
                    dir.join("server.key").display()
                ));
            }
        }
        let (http_extra, auth_extra) = if auth == RegistryAuth::Tls {
            (extra, String::new())
        } else {
            (String::new(), extra)
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nvalidation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n{auth_extra}http:\n  addr: 127.0.0.1:{port}\n{http_extra}",
            dir.join("storage").display()
        );
        fs::write(dir.join("config.yml"), config).expect("write registry config");
        let mut registry = Registry {
            dir: dir.to_path_buf(),
            port,
            child: None,
            auth,
            token_server,
        };
        registry.restart();
        registry
    }

    /// Starts the registry process (again, on the same port and storage) and waits for it.
    pub fn restart(&mut self) {
        self.stop();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("registry.log"))
            .expect("open registry log");
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "docker-registry did not listen on 127.0.0.1:{}: {}",
                self.port,
                self.log()
            );
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("docker-registry exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the registry process (SIGKILL, as a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn auth(&self) -> RegistryAuth {
        self.auth
    }

    /// The `certs.d` directory holding the test CA for this registry (TLS registries).
    pub fn certs_d(&self) -> PathBuf {
        self.dir.join("certs.d")
    }

    /// The file the registry keeps a blob's bytes in.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join(format!(
            "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// The registry's log (its access log included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// How many blob uploads the registry has finished (`PUT …/blobs/uploads/…` requests).
    pub fn finished_uploads(&self) -> usize {
        self.upload_lines().count()
    }

    /// How many finished uploads named one of `digests` (`…?digest=<digest>`).
    pub fn finished_uploads_of(&self, digests: &[String]) -> usize {
        self.upload_lines()
            .filter(|line| {
                digests.iter().any(|digest| {
                    line.contains(&format!("digest={digest}"))
                        || line.contains(&format!("digest={}", digest.replace(':', "%3A")))
                })
            })
            .count()
    }

    fn upload_lines(&self) -> impl Iterator<Item = String> {
        self.log()
            .lines()
            .filter(|line| line.contains("\"PUT /v2/") && line.contains("/blobs/uploads/"))
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// The scopes the token server was asked for, in order.
    pub fn token_scopes(&self) -> Vec<String> {
        self.token_server
            .as_ref()
            .map(|server| server.scopes.lock().map(|s| s.clone()).unwrap_or_default())
            .unwrap_or_default()
    }

    /// `GET` of a registry path with curl (plain registries), as bytes.
    pub fn get(&self, path: &str, accept: &str) -> Vec<u8> {
        let output = Command::new("curl")
            .args(["-sf", "-H", &format!("Accept: {accept}")])
            .arg(format!("http://{}{path}", self.host()))
            .output()
            .expect("run curl");
        assert!(output.status.success(), "curl GET {path} failed");
        output.stdout
    }

    /// Uploads a blob (monolithic) to a plain registry; returns its digest.
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let location = self.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
        let location = location
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_string())
            })
            .expect("upload location");
        let separator = if location.contains('?') { '&' } else { '?' };
        let path = location
            .strip_prefix(&format!("http://{}", self.host()))
            .unwrap_or(&location)
            .to_string();
        self.request(
            "PUT",
            &format!("{path}{separator}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        digest
    }

    /// Stores a manifest under `repo:tag` on a plain registry; returns the response head.
    pub fn put_manifest(&self, repo: &str, tag: &str, media_type: &str, bytes: &[u8]) -> String {
        self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", media_type)],
            bytes,
        )
    }

    /// One HTTP/1.1 request to a plain registry; returns the response head, failing on a
    /// status other than 2xx.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect registry");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.host(),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send request");
        stream.write_all(body).expect("send body");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read response");
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.split(' ').nth(1).unwrap_or("");
        assert!(
            status.starts_with('2'),
            "{method} {path}: {}",
            text.chars().take(600).collect::<String>()
        );
        text.split("\r\n\r\n").next().unwrap_or("").to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The token server of the bearer flow: `GET /token?service=…&scope=…` with HTTP basic
/// credentials of [`REGISTRY_USER`] gets an RS256 JWT (its `x5c` the signing certificate, which
/// the registry's `rootcertbundle` holds) granting the scopes asked; wrong or missing credentials
/// get a 401. Each scope asked is recorded.
#[derive(Debug)]
struct TokenServer {
    port: u16,
    scopes: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    fn start(dir: &Path) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("token server address").port();
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&scopes);
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve_token(stream, &dir, &recorded);
            }
        });
        TokenServer { port, scopes }
    }
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `%XX` decoding of a query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve_token(
    mut stream: TcpStream,
    dir: &Path,
    scopes: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, query)| query);
    let mut asked = Vec::new();
    for pair in query.split('&') {
        if let Some(("scope", value)) = pair.split_once('=') {
            asked.push(percent_decode(value));
        }
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"))
    );
    let respond = |stream: &mut TcpStream, status: &str, body: &str| -> std::io::Result<()> {
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()?;
        stream.shutdown(Shutdown::Both)
    };
    if authorization.as_deref() != Some(expected.as_str()) {
        return respond(
            &mut stream,
            "401 Unauthorized",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
    }
    if let Ok(mut recorded) = scopes.lock() {
        recorded.extend(asked.iter().cloned());
    }
    let access: Vec<serde_json::Value> = asked
        .iter()
        .flat_map(|scope| scope.split(' '))
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let pem = fs::read_to_string(dir.join("token.crt"))?;
    let der_base64: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [der_base64]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": REGISTRY_USER,
        "aud": TOKEN_SERVICE,
        "exp": now + 600,
        "nbf": now - 60,
        "iat": now,
        "jti": format!("ovl-{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let mut signer = Command::new(OPENSSL)
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join("token.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    signer
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("openssl stdin"))?
        .write_all(signing_input.as_bytes())?;
    let signature = signer.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", base64url(&signature));
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 600});
    respond(&mut stream, "200 OK", &body.to_string())
}

/// A TCP proxy on loopback in front of a registry. The first response to a blob `GET` that it
/// sees is cut after `cut_after` bytes (the connection closed both ways); every request head is
/// recorded, so that a test can see the `Range` request that resumed the download. Each 16 KiB
/// passed down waits `delay` first, so that a test can stop the registry in the middle of a blob.
#[derive(Debug)]
pub struct FlakyProxy {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl FlakyProxy {
    pub fn start(upstream_port: u16, cut_after: usize, delay: Duration) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&heads);
        let cut_done = Arc::new(Mutex::new(false));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let recorded = Arc::clone(&recorded);
                let cut_done = Arc::clone(&cut_done);
                std::thread::spawn(move || {
                    let _ = proxy_connection(
                        client,
                        upstream_port,
                        (cut_after, delay),
                        &recorded,
                        &cut_done,
                    );
                });
            }
        });
        FlakyProxy { port, heads }
    }

    /// `127.0.0.1:<port>` (a loopback registry name, so plain HTTP).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request head the proxy forwarded.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// Forwards one client connection; request heads are recorded as they pass (bodies, which the
/// tests' pulls do not send, pass through with the next read).
fn proxy_connection(
    client: TcpStream,
    upstream_port: u16,
    (cut_after, delay): (usize, Duration),
    heads: &Arc<Mutex<Vec<String>>>,
    cut_done: &Mutex<bool>,
) -> std::io::Result<()> {
    let upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let mut client_reader = client.try_clone()?;
    let mut upstream_writer = upstream.try_clone()?;
    let cut_this = Arc::new(Mutex::new(false));
    let cut_flag = Arc::clone(&cut_this);
    let seen = Arc::clone(heads);
    // Client to upstream, recording request heads; the first blob GET is marked to be cut.
    let forward = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_reader.read(&mut buf)?;
            if n == 0 {
                let _ = upstream_writer.shutdown(Shutdown::Write);
                return Ok(());
            }
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if ["GET ", "HEAD ", "PUT ", "POST ", "PATCH "]
                .iter()
                .any(|method| text.starts_with(method))
            {
                if let Ok(mut seen) = seen.lock() {
                    seen.push(text.split("\r\n\r\n").next().unwrap_or("").to_string());
                }
                if text.starts_with("GET ") && text.contains("/blobs/sha256:") {
                    if let Ok(mut cut) = cut_flag.lock() {
                        *cut = true;
                    }
                }
            }
            upstream_writer.write_all(&buf[..n])?;
        }
    });
    let mut upstream_reader = upstream;
    let mut client_writer = client;
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent_after_mark = 0usize;
    let result = loop {
        let n = match upstream_reader.read(&mut buf) {
            Ok(0) | Err(_) => break Ok(()),
            Ok(n) => n,
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let marked = cut_this.lock().map(|c| *c).unwrap_or(false);
        let first_cut = marked && cut_done.lock().map(|done| !*done).unwrap_or(false);
        if first_cut {
            if sent_after_mark + n >= cut_after {
                let keep = cut_after - sent_after_mark;
                let _ = client_writer.write_all(&buf[..keep]);
                if let Ok(mut done) = cut_done.lock() {
                    *done = true;
                }
                let _ = upstream_reader.shutdown(Shutdown::Both);
                break Ok(());
            }
            sent_after_mark += n;
        }
        if let Err(err) = client_writer.write_all(&buf[..n]) {
            break Err(err);
        }
    };
    let _ = client_writer.shutdown(Shutdown::Both);
    let _ = forward.join();
    result
}

/// A server that is not a registry: it answers `/v2/` and serves one manifest larger than any
/// registry stores (distribution 2.8 refuses a manifest over 4 MiB with "request body too
/// large", so the real one cannot serve it): the hostile end of the manifest size limit.
#[derive(Debug)]
pub struct OversizedManifestServer {
    port: u16,
}

impl OversizedManifestServer {
    /// Serves a manifest of `size` bytes at `/v2/big/manifests/1`.
    pub fn start(size: usize) -> OversizedManifestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let mut manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:{}"}},"layers":[],"annotations":{{"pad":""#,
            "0".repeat(64)
        )
        .into_bytes();
        manifest.resize(size.saturating_sub(3), b'x');
        manifest.extend_from_slice(b"\"}}");
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(clone) => clone,
                    Err(_) => continue,
                });
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line.trim().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                let body: &[u8] = if request_line.contains("/manifests/") {
                    &manifest
                } else {
                    b"{}"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.distribution.manifest.v2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(body);
                let _ = stream.shutdown(Shutdown::Both);
            }
        });
        OversizedManifestServer { port }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
