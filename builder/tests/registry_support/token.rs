//! A token server for `docker-registry`'s token auth: it signs ES256 JWTs with a key whose
//! self-signed certificate is the registry's `rootcertbundle` (sent in the `x5c` header).
//! One user with a password, or the refresh token `refresh-USER`; anonymous requests get no
//! access.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// The `iss` of tokens.
pub const ISSUER: &str = "kiln-test-issuer";

/// One token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub method: String,
    pub scopes: Vec<String>,
    pub user: Option<String>,
    pub granted: bool,
}

/// A running token server.
pub struct TokenServer {
    pub port: u16,
    pub cert_pem: String,
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    user: String,
    password: String,
    service: String,
}

impl TokenServer {
    /// Starts the server for one user.
    pub fn start(user: &str, password: &str, service: &str) -> TokenServer {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "kiln test token signer");
        let cert = params.self_signed(&kp).expect("cert");
        let rng = ring::rand::SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &kp.serialize_der(), &rng)
                .expect("ring key");
        let signer = Arc::new(Signer {
            key,
            cert_der: cert.der().to_vec(),
            user: user.into(),
            password: password.into(),
            service: service.into(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (signer, requests) = (signer.clone(), requests2.clone());
                        std::thread::spawn(move || {
                            let _ = serve(conn, &signer, &requests);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TokenServer { port, cert_pem: cert.pem(), requests, stop, thread: Some(thread) }
    }

    /// The realm URL.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn serve(
    conn: TcpStream,
    signer: &Signer,
    requests: &Mutex<Vec<TokenRequest>>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut auth = None;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("authorization:") {
            auth = Some(line[14..].trim().to_string());
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params: Vec<(String, String)> = if method == "POST" {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    };
    let mut scopes: Vec<String> = Vec::new();
    for (k, v) in &params {
        if k == "scope" {
            scopes.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_string));
        }
    }
    let mut user = None;
    let mut rejected = false;
    if let Some(a) = auth.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(a.trim()).unwrap_or_default();
        let text = String::from_utf8_lossy(&decoded).to_string();
        if text == format!("{}:{}", signer.user, signer.password) {
            user = Some(signer.user.clone());
        } else {
            rejected = true;
        }
    }
    if method == "POST" {
        let refresh = params.iter().find(|(k, _)| k == "refresh_token").map(|(_, v)| v.clone());
        if refresh.as_deref() == Some(&format!("refresh-{}", signer.user)) {
            user = Some(signer.user.clone());
        } else {
            rejected = true;
        }
    }
    requests.lock().expect("requests").push(TokenRequest {
        method: method.clone(),
        scopes: scopes.clone(),
        user: user.clone(),
        granted: !rejected,
    });
    let mut conn = conn;
    if rejected {
        conn.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let access: Vec<serde_json::Value> = if user.is_some() {
        scopes
            .iter()
            .filter_map(|s| {
                let mut p = s.splitn(3, ':');
                let (kind, name, actions) = (p.next()?, p.next()?, p.next()?);
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&signer.cert_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": signer.service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let sig = signer.key.sign(&rng, signing_input.as_bytes()).expect("sign");
    let jwt = format!("{signing_input}.{}", b64url(sig.as_ref()));
    let reply =
        serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": 300}).to_string();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(reply.as_bytes())?;
    Ok(())
}
