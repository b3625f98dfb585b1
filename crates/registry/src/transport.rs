//! One registry: TLS or plain HTTP, authentication, retries.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use ureq::http::Response;
use ureq::tls::{Certificate, ClientCert, PemItem, RootCerts, TlsConfig};
use ureq::Body;

use crate::credentials::Credentials;
use crate::{Error, Result};

/// The certificate bundles Go's crypto/x509 looks for on Linux, first found wins; the
/// `SSL_CERT_FILE` environment variable replaces the list.
const SYSTEM_CA_FILES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Docker Hub's API host, which `docker.io` names stand for.
const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Docker's per-registry certificate directories (`/etc/docker/certs.d`).
    pub certs_d: PathBuf,
    /// Registries (`host:port` or host) reached over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Credentials for this registry, from [`crate::credentials`].
    pub credentials: Option<Credentials>,
    /// How many times a failed connection or a broken download is tried again.
    pub retries: u32,
    /// The first wait before a retry; each further retry waits twice as long.
    pub backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            certs_d: PathBuf::from("/etc/docker/certs.d"),
            insecure_registries: Vec::new(),
            credentials: None,
            retries: 5,
            backoff: Duration::from_millis(500),
        }
    }
}

/// How the registry wants to be authenticated, learnt from its `/v2/` answer.
#[derive(Debug, Clone)]
enum Challenge {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug, Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by scope.
    tokens: HashMap<String, String>,
}

/// A client of one registry. Shared by the threads of a pull (`&Client` is `Sync`).
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    /// The registry as named (`127.0.0.1:5000`, `docker.io`).
    registry: String,
    /// `https://host[:port]` or `http://…`.
    base: String,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
    retries: u32,
    backoff: Duration,
}

/// An HTTP method of the registry API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Put,
    Post,
    Patch,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// A request body: bytes can be sent again after a failure or a new token, a stream cannot.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream(&'a mut dyn Read),
}

/// One request of the registry API, with the token scopes it needs.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Payload<'a>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(method: Method, url: String, scopes: Vec<String>) -> Request<'a> {
        Request {
            method,
            url,
            scopes,
            headers: Vec::new(),
            body: Payload::Empty,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: Payload<'a>) -> Self {
        self.body = body;
        self
    }
}

/// The token scope of pulling from a repository.
pub(crate) fn pull_scope(path: &str) -> String {
    format!("repository:{path}:pull")
}

/// The token scope of pushing to a repository.
pub(crate) fn push_scope(path: &str) -> String {
    format!("repository:{path}:pull,push")
}

impl Client {
    /// A client of `registry` (`host[:port]`, or `docker.io`), reading its certificates from
    /// `certs_d/<registry>/` now.
    pub fn new(registry: &str, options: &ClientOptions) -> Result<Client> {
        if registry.is_empty() || registry.contains('/') || registry.starts_with('.') {
            return Err(Error::invalid(
                format!("registry {registry:?}"),
                "not a host[:port]",
            ));
        }
        let host = if registry == "docker.io" {
            DOCKER_HUB_HOST
        } else {
            registry
        };
        let certs_dir = options.certs_d.join(registry);
        let has_certs_dir = certs_dir.is_dir();
        let plain_http = !has_certs_dir && is_insecure(registry, &options.insecure_registries);
        let base = if plain_http {
            format!("http://{host}")
        } else {
            format!("https://{host}")
        };
        let tls = tls_config(has_certs_dir.then_some(certs_dir.as_path()))?;
        let mut config = ureq::Agent::config_builder();
        if is_loopback(registry) {
            // As Go's ProxyFromEnvironment: loopback is never proxied.
            config = config.proxy(None);
        }
        let config = config
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .user_agent(concat!("ovl/", env!("CARGO_PKG_VERSION")))
            .max_redirects(10)
            .build();
        tracing::debug!(%registry, %base, "registry client");
        Ok(Client {
            agent: config.new_agent(),
            registry: registry.to_string(),
            base,
            credentials: options.credentials.clone(),
            auth: Mutex::new(AuthState::default()),
            retries: options.retries,
            backoff: options.backoff,
        })
    }

    /// The registry as named.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The absolute URL of an API path (`/v2/...`).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resolves a `Location` header against the registry.
    pub(crate) fn resolve_location(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            self.url(location)
        }
    }

    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }

    /// The wait before retry number `attempt` (0-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.backoff.saturating_mul(1 << attempt.min(6))
    }

    /// Checks that the registry accepts the credentials (`ovl login`): the `/v2/` endpoint, and
    /// for a token registry a token without scope, as Docker's login does.
    pub fn check_login(&self) -> Result<()> {
        let challenge = self.challenge()?;
        match challenge {
            Challenge::Anonymous => Ok(()),
            Challenge::Basic => {
                let request = Request::new(Method::Get, self.url("/v2/"), Vec::new());
                let response = self.send(request)?;
                expect_success(Method::Get, &self.url("/v2/"), response).map(|_| ())
            }
            Challenge::Bearer { realm, service } => {
                self.fetch_token(&realm, service.as_deref(), &[])?;
                Ok(())
            }
        }
    }

    /// Whether `url` is on the registry itself (scheme, host and port).
    fn same_origin(&self, url: &str) -> bool {
        url.strip_prefix(self.base.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
    }

    /// Sends a request with authentication, answering one 401 with a new token, and retrying
    /// a replayable request after a connection failure or a 429/5xx answer.
    pub(crate) fn send(&self, mut request: Request<'_>) -> Result<Response<Body>> {
        let replayable = !matches!(request.body, Payload::Stream(_));
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            // Credentials go to the registry only, never to another host a `Location` names.
            let authorization = match self.same_origin(&request.url) {
                true => self.authorization(&request.scopes)?,
                false => None,
            };
            let result = self.attempt(&mut request, authorization.as_deref());
            let retry = attempt < self.retries && replayable;
            match result {
                Err(err) if retry && is_transient(&err) => {
                    tracing::debug!(url = %request.url, error = %err, attempt, "retrying");
                }
                Err(err) => {
                    return Err(Error::Transport {
                        method: request.method.name(),
                        url: request.url,
                        source: Box::new(err),
                    })
                }
                Ok(response) if response.status().as_u16() == 401 => {
                    let header = header(&response, "www-authenticate");
                    if renewed || !replayable {
                        return Err(self.unauthorized(response));
                    }
                    renewed = true;
                    self.renew(header.as_deref(), &request.scopes)?;
                    continue;
                }
                Ok(response) if retry && matches!(response.status().as_u16(), 429 | 502..=504) => {
                    tracing::debug!(url = %request.url, status = %response.status(), attempt, "retrying");
                }
                Ok(response) => return Ok(response),
            }
            std::thread::sleep(self.backoff(attempt));
            attempt += 1;
        }
    }

    fn attempt(
        &self,
        request: &mut Request<'_>,
        authorization: Option<&str>,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        fn with_headers<B>(
            mut builder: ureq::RequestBuilder<B>,
            headers: &[(&'static str, String)],
            authorization: Option<&str>,
        ) -> ureq::RequestBuilder<B> {
            for (name, value) in headers {
                builder = builder.header(*name, value);
            }
            if let Some(value) = authorization {
                builder = builder.header("Authorization", value);
            }
            builder
        }
        let url = request.url.as_str();
        let headers = request.headers.as_slice();

        let with_body = match request.method {
            Method::Get => return with_headers(self.agent.get(url), headers, authorization).call(),
            Method::Head => {
                return with_headers(self.agent.head(url), headers, authorization).call()
            }
            Method::Put => with_headers(self.agent.put(url), headers, authorization),
            Method::Post => with_headers(self.agent.post(url), headers, authorization),
            Method::Patch => with_headers(self.agent.patch(url), headers, authorization),
        };
        match &mut request.body {
            Payload::Empty => with_body.send_empty(),
            Payload::Bytes(bytes) => with_body.send(*bytes),
            Payload::Stream(reader) => with_body.send(ureq::SendBody::from_reader(*reader)),
        }
    }

    /// The `Authorization` header value for a request needing `scopes`, if any.
    fn authorization(&self, scopes: &[String]) -> Result<Option<String>> {
        match self.challenge()? {
            Challenge::Anonymous => Ok(None),
            Challenge::Basic => Ok(self.credentials.as_ref().map(basic_header)),
            Challenge::Bearer { realm, service } => {
                let key = scopes.join(" ");
                if let Some(token) = self.lock_auth()?.tokens.get(&key) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scopes)?;
                self.lock_auth()?.tokens.insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn lock_auth(&self) -> Result<std::sync::MutexGuard<'_, AuthState>> {
        self.auth
            .lock()
            .map_err(|_| Error::invalid(&self.registry, "a thread panicked while authenticating"))
    }

    /// A `GET` outside the token flow (the `/v2/` ping, the token server), with the given
    /// `Authorization` if any, retried after a connection failure.
    fn get_unauthenticated(
        &self,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<Response<Body>> {
        let mut request = Request::new(Method::Get, url.to_string(), Vec::new());
        let mut attempt = 0;
        loop {
            match self.attempt(&mut request, authorization) {
                Ok(response) => return Ok(response),
                Err(err) if attempt < self.retries && is_transient(&err) => {
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                Err(err) => {
                    return Err(Error::Transport {
                        method: "GET",
                        url: url.to_string(),
                        source: Box::new(err),
                    })
                }
            }
        }
    }

    /// The registry's challenge, asked once with `GET /v2/`.
    fn challenge(&self) -> Result<Challenge> {
        if let Some(challenge) = &self.lock_auth()?.challenge {
            return Ok(challenge.clone());
        }
        let url = self.url("/v2/");
        let response = self.get_unauthenticated(&url, None)?;
        let challenge = match response.status().as_u16() {
            200..=299 => Challenge::Anonymous,
            401 => parse_challenge(header(&response, "www-authenticate").as_deref())
                .ok_or_else(|| self.unauthorized(response))?,
            _ => return Err(status_error(Method::Get, &url, response)),
        };
        self.lock_auth()?.challenge = Some(challenge.clone());
        Ok(challenge)
    }

    /// After a 401: takes the new challenge and drops the token of these scopes.
    fn renew(&self, header: Option<&str>, scopes: &[String]) -> Result<()> {
        let mut state = self.lock_auth()?;
        if let Some(challenge) = parse_challenge(header) {
            state.challenge = Some(challenge);
        }
        state.tokens.remove(&scopes.join(" "));
        Ok(())
    }

    /// Asks the token server for a bearer token (the credentials, if any, as HTTP basic).
    fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        let mut query = Vec::new();
        if let Some(service) = service {
            query.push(format!("service={}", query_escape(service)));
        }
        for scope in scopes {
            query.push(format!("scope={}", query_escape(scope)));
        }
        if let Some(credentials) = &self.credentials {
            query.push(format!("account={}", query_escape(&credentials.username)));
        }
        let separator = if realm.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            realm.to_string()
        } else {
            format!("{realm}{separator}{}", query.join("&"))
        };
        let authorization = self.credentials.as_ref().map(basic_header);
        let response = self.get_unauthenticated(&url, authorization.as_deref())?;
        match response.status().as_u16() {
            200..=299 => {}
            401 | 403 => return Err(self.unauthorized(response)),
            _ => return Err(status_error(Method::Get, &url, response)),
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let bytes = read_limited(response, 1 << 20, &url)?;
        let parsed: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|err| Error::invalid(format!("token from {realm}"), err.to_string()))?;
        let token = if parsed.token.is_empty() {
            parsed.access_token
        } else {
            parsed.token
        };
        if token.is_empty() {
            return Err(Error::invalid(
                format!("token from {realm}"),
                "the answer has no token",
            ));
        }
        Ok(token)
    }

    /// The error of a 401 answer, with the registry's own words.
    fn unauthorized(&self, response: Response<Body>) -> Error {
        let mut message = error_message(response);
        if message.is_empty() {
            message = "unauthorized: authentication required".to_string();
        }
        Error::Unauthorized {
            registry: self.registry.clone(),
            message,
            with_credentials: self.credentials.is_some(),
        }
    }
}

/// Whether a failure is worth another attempt: the connection, not the request, failed.
pub(crate) fn is_transient(err: &ureq::Error) -> bool {
    matches!(
        err,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    )
}

/// Fails with the registry's error message unless the status is 2xx.
pub(crate) fn expect_success(
    method: Method,
    url: &str,
    response: Response<Body>,
) -> Result<Response<Body>> {
    if response.status().is_success() {
        return Ok(response);
    }
    Err(status_error(method, url, response))
}

/// The error of an answer with an unexpected status, with the registry's own words.
pub(crate) fn status_error(method: Method, url: &str, response: Response<Body>) -> Error {
    Error::Status {
        method: method.name(),
        url: url.to_string(),
        status: response.status().as_u16(),
        message: error_message(response),
    }
}

/// A header's value as text.
pub(crate) fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Reads a body of at most `limit` bytes.
pub(crate) fn read_limited(response: Response<Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            operation: "reading",
            path: PathBuf::from(what),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

/// The message of a registry's error body (`{"errors":[{"code","message"}]}`), `code: message`
/// joined, or the start of the body as text.
pub(crate) fn error_message(response: Response<Body>) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let mut bytes = Vec::new();
    let _ = response
        .into_body()
        .into_reader()
        .take(64 * 1024)
        .read_to_end(&mut bytes);
    if let Ok(parsed) = serde_json::from_slice::<Errors>(&bytes) {
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|entry| {
                let code = entry.code.to_lowercase().replace('_', " ");
                if entry.message.is_empty() || entry.message == code {
                    code
                } else {
                    format!("{code}: {}", entry.message)
                }
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    String::from_utf8_lossy(&bytes)
        .trim()
        .chars()
        .take(200)
        .collect()
}

fn basic_header(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Parses `Bearer realm="…",service="…"` or `Basic realm="…"`.
fn parse_challenge(header: Option<&str>) -> Option<Challenge> {
    let header = header?.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key=value` pairs of a challenge, keys lowercased.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((idx, ch)) = chars.next() {
                match ch {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = idx + 1;
                        break;
                    }
                    other => value.push(other),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Whether Docker would reach `registry` without TLS: a loopback address (Docker's default
/// insecure range 127.0.0.0/8, and `localhost`) or one named in `insecure`.
fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    insecure
        .iter()
        .any(|entry| entry == registry || entry == host)
        || is_loopback(registry)
}

/// The host of `host[:port]`, brackets of an IPv6 address removed.
fn host_of(registry: &str) -> &str {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') => {
            host
        }
        _ => registry,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Whether `host[:port]` is `localhost` or a loopback address.
fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The TLS settings: the system CAs plus the `*.crt` of the registry's certs.d directory, and
/// the client certificate of its `*.cert`/`*.key` pair, as Docker reads them.
fn tls_config(certs_dir: Option<&Path>) -> Result<TlsConfig> {
    let mut roots = system_roots()?;
    let mut client_cert = None;
    if let Some(dir) = certs_dir {
        let read_dir = std::fs::read_dir(dir).map_err(|source| Error::Io {
            operation: "reading",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut names: Vec<String> = read_dir
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            let path = dir.join(name);
            if name.ends_with(".crt") {
                roots.extend(pem_items(&path)?.into_iter().filter_map(|item| match item {
                    PemItem::Certificate(cert) => Some(cert),
                    _ => None,
                }));
            } else if let Some(stem) = name.strip_suffix(".cert") {
                let key_path = dir.join(format!("{stem}.key"));
                if !key_path.is_file() {
                    return Err(Error::Config {
                        path: path.clone(),
                        message: format!(
                            "missing key {} for client certificate {name}; CA certificates must use the extension .crt",
                            key_path.display()
                        ),
                    });
                }
                let chain: Vec<Certificate<'static>> = pem_items(&path)?
                    .into_iter()
                    .filter_map(|item| match item {
                        PemItem::Certificate(cert) => Some(cert),
                        _ => None,
                    })
                    .collect();
                let key = pem_items(&key_path)?
                    .into_iter()
                    .find_map(|item| match item {
                        PemItem::PrivateKey(key) => Some(key),
                        _ => None,
                    })
                    .ok_or_else(|| Error::Config {
                        path: key_path.clone(),
                        message: "no private key in the file".to_string(),
                    })?;
                client_cert = Some(ClientCert::new_with_certs(&chain, key));
            } else if let Some(stem) = name.strip_suffix(".key") {
                if !names.contains(&format!("{stem}.cert")) {
                    return Err(Error::Config {
                        path,
                        message: format!("missing client certificate {stem}.cert for key {name}"),
                    });
                }
            }
        }
    }
    let root_certs = if roots.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&roots)
    };
    Ok(TlsConfig::builder()
        .root_certs(root_certs)
        .client_cert(client_cert)
        .build())
}

/// The system's CA bundle, as Go finds it.
fn system_roots() -> Result<Vec<Certificate<'static>>> {
    let candidates: Vec<PathBuf> = match std::env::var_os("SSL_CERT_FILE") {
        Some(file) => vec![PathBuf::from(file)],
        None => SYSTEM_CA_FILES.iter().map(PathBuf::from).collect(),
    };
    for path in candidates {
        if path.is_file() {
            return Ok(pem_items(&path)?
                .into_iter()
                .filter_map(|item| match item {
                    PemItem::Certificate(cert) => Some(cert),
                    _ => None,
                })
                .collect());
        }
    }
    Ok(Vec::new())
}

fn pem_items(path: &Path) -> Result<Vec<PemItem<'static>>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        operation: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    ureq::tls::parse_pem(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| Error::Config {
            path: path.to_path_buf(),
            message: format!("not PEM: {err}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_like_distributions_clients() {
        let bearer = parse_challenge(Some(
            r#"Bearer realm="http://127.0.0.1:9/token",service="reg \"x\"",scope="repository:a:pull""#,
        ));
        match bearer {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "http://127.0.0.1:9/token");
                assert_eq!(service.as_deref(), Some("reg \"x\""));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(Some(r#"Basic realm="Registry Realm""#)),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge(Some("Bearer service=x")).is_none());
        assert!(parse_challenge(None).is_none());
    }

    #[test]
    fn loopback_registries_are_insecure_like_dockers_default() {
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("127.8.0.1", &[]));
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("[::1]:5000", &[]));
        assert!(!is_insecure("registry.example:5000", &[]));
        assert!(is_insecure(
            "registry.example:5000",
            &["registry.example:5000".to_string()]
        ));
        assert!(!is_insecure("10.0.0.1:5000", &[]));
    }

    #[test]
    fn credentials_stay_on_the_registry() {
        let client = Client::new("127.0.0.1:5000", &ClientOptions::default()).unwrap();
        assert_eq!(client.url("/v2/"), "http://127.0.0.1:5000/v2/");
        assert!(client.same_origin("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1"));
        assert!(!client.same_origin("http://127.0.0.1:50001/v2/"));
        assert!(!client.same_origin("http://127.0.0.1:5000.evil.example/v2/"));
        assert!(!client.same_origin("https://storage.example/blob"));
        let hub = Client::new("docker.io", &ClientOptions::default()).unwrap();
        assert_eq!(hub.url("/v2/"), "https://registry-1.docker.io/v2/");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
