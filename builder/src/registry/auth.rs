//! Registry authentication: `WWW-Authenticate` challenges, basic auth and bearer tokens
//! (anonymous, with a user name and password, or with an identity/refresh token).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::credentials::Credential;
use super::error::{RegistryError, Result};
use super::transport::{Failure, HostClient, error_detail};

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` to ask the token for.
        service: Option<String>,
        /// The scope the registry asked for, if it said.
        scope: Option<String>,
    },
}

/// Parses every challenge of a `WWW-Authenticate` header (`Scheme k=v, k="v", Scheme2 …`).
/// Unknown schemes are left out.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut current: Option<(String, BTreeMap<String, String>)> = None;
    let mut rest = header.trim();
    let finish = |c: Option<(String, BTreeMap<String, String>)>, out: &mut Vec<Challenge>| {
        if let Some((scheme, mut params)) = c {
            match scheme.to_ascii_lowercase().as_str() {
                "basic" => out.push(Challenge::Basic),
                "bearer" => {
                    if let Some(realm) = params.remove("realm") {
                        out.push(Challenge::Bearer {
                            realm,
                            service: params.remove("service"),
                            scope: params.remove("scope"),
                        });
                    }
                }
                _ => {}
            }
        }
    };
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        let token_end =
            rest.find(|c: char| c == '=' || c == ',' || c.is_whitespace()).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start();
        if token.is_empty() {
            break;
        }
        if let Some(value_part) = after.strip_prefix('=') {
            let value_part = value_part.trim_start();
            let (value, remaining) = match value_part.strip_prefix('"') {
                Some(q) => {
                    let mut value = String::new();
                    let mut chars = q.char_indices();
                    let mut end = q.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    value.push(n);
                                }
                            }
                            '"' => {
                                end = i + 1;
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    (value, &q[end.min(q.len())..])
                }
                None => {
                    let end = value_part.find(',').unwrap_or(value_part.len());
                    (value_part[..end].trim().to_string(), &value_part[end..])
                }
            };
            if let Some((_, params)) = current.as_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining;
        } else {
            finish(current.take(), &mut out);
            current = Some((token.to_string(), BTreeMap::new()));
            rest = after;
        }
    }
    finish(current, &mut out);
    out
}

/// What a token endpoint answers.
#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The `Authorization` header currently used for one repository, and how to renew it.
pub(crate) struct Auth {
    registry: String,
    credential: Option<Credential>,
    scopes: Vec<String>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    header: Option<String>,
    /// Bumped whenever `header` changes, so concurrent 401s renew it only once.
    generation: u64,
    expires: Option<Instant>,
    bearer: Option<Challenge>,
}

impl Auth {
    /// Authentication for `registry` with `credential`, asking tokens for `scopes`
    /// (`repository:NAME:pull,push`).
    pub(crate) fn new(registry: &str, credential: Option<Credential>, scopes: Vec<String>) -> Auth {
        Auth {
            registry: registry.to_string(),
            credential,
            scopes,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The header to send now and its generation.
    pub(crate) async fn header(&self) -> (Option<String>, u64) {
        let state = self.state.lock().await;
        (state.header.clone(), state.generation)
    }

    /// Sets up the header from the registry's `/v2/` challenges (before the first request).
    pub(crate) async fn prime(&self, host: &HostClient, challenges: &[Challenge]) -> Result<()> {
        let mut state = self.state.lock().await;
        self.apply(host, &mut state, challenges, false).await
    }

    /// Renews the header after a 401 that carried `challenges`, unless another request did
    /// so already since `generation`.
    pub(crate) async fn renew(
        &self,
        host: &HostClient,
        generation: u64,
        challenges: &[Challenge],
    ) -> Result<()> {
        let mut state = self.state.lock().await;
        if state.generation != generation {
            return Ok(());
        }
        if challenges.is_empty() && state.header.is_none() {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                detail: ": the registry did not say how to authenticate".into(),
            });
        }
        let challenges = if challenges.is_empty() {
            state.bearer.clone().into_iter().collect::<Vec<_>>()
        } else {
            challenges.to_vec()
        };
        let sent_basic = state.header.as_deref().is_some_and(|h| h.starts_with("Basic "));
        if sent_basic && !challenges.iter().any(|c| matches!(c, Challenge::Bearer { .. })) {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                detail:
                    ": the registry refused the stored credentials (invalid username or password?)"
                        .into(),
            });
        }
        self.apply(host, &mut state, &challenges, true).await
    }

    /// Whether a bearer token is about to expire (renewed before the next big request).
    pub(crate) async fn expiring(&self) -> bool {
        let state = self.state.lock().await;
        state.expires.is_some_and(|e| e <= Instant::now() + Duration::from_secs(10))
    }

    /// Renews an expiring token proactively.
    pub(crate) async fn refresh(&self, host: &HostClient) -> Result<()> {
        let mut state = self.state.lock().await;
        if let Some(bearer) = state.bearer.clone() {
            self.apply(host, &mut state, &[bearer], true).await?;
        }
        Ok(())
    }

    /// Sets the header for `challenges`. Without credentials for a basic challenge this is an
    /// error only when `required` (a request was refused); before the first request the
    /// registry may still allow anonymous access to the repository.
    async fn apply(
        &self,
        host: &HostClient,
        state: &mut State,
        challenges: &[Challenge],
        required: bool,
    ) -> Result<()> {
        let bearer = challenges.iter().find(|c| matches!(c, Challenge::Bearer { .. }));
        let basic = challenges.contains(&Challenge::Basic);
        if let Some(b) = bearer {
            let (token, expires) = self.fetch_token(host, b).await?;
            state.header = Some(format!("Bearer {token}"));
            state.expires = expires;
            state.bearer = Some(b.clone());
        } else if basic {
            match &self.credential {
                Some(Credential::Basic { username, password }) => {
                    let raw = format!("{username}:{password}");
                    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                    state.header = Some(format!("Basic {encoded}"));
                }
                Some(Credential::IdentityToken(_)) => {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        detail: ": the registry wants basic auth but the stored credential is an \
                                 identity token"
                            .into(),
                    });
                }
                None if !required => return Ok(()),
                None => {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        detail: format!(
                            ": no credentials found (run kiln login {})",
                            self.registry
                        ),
                    });
                }
            }
        } else if !challenges.is_empty() {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                detail: ": the registry asks for an authentication scheme kiln does not know"
                    .into(),
            });
        }
        state.generation += 1;
        Ok(())
    }

    /// Gets a token from the challenge's realm: a POST with the refresh token when the
    /// credential is an identity token, else a GET (with basic auth when there is a password).
    async fn fetch_token(
        &self,
        host: &HostClient,
        challenge: &Challenge,
    ) -> Result<(String, Option<Instant>)> {
        let Challenge::Bearer { realm, service, scope } = challenge else {
            return Err(RegistryError::Internal("fetch_token without a bearer challenge".into()));
        };
        let mut url = Url::parse(realm).map_err(|_| RegistryError::Unauthorized {
            registry: self.registry.clone(),
            detail: format!(": the token realm {realm:?} is not a URL"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                detail: format!(": the token realm {realm:?} is not an http(s) URL"),
            });
        }
        let mut scopes = self.scopes.clone();
        if let Some(s) = scope
            && !scopes.contains(s)
            && self.scopes.is_empty()
        {
            scopes.push(s.clone());
        }
        let started = Instant::now();
        let request = match &self.credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", refresh);
                form.append_pair("client_id", "kiln");
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                if !scopes.is_empty() {
                    form.append_pair("scope", &scopes.join(" "));
                }
                host.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in &scopes {
                        q.append_pair("scope", s);
                    }
                    if let Some(Credential::Basic { username, .. }) = other {
                        q.append_pair("account", username);
                    }
                }
                let mut rb = host.http.get(url.clone());
                if let Some(Credential::Basic { username, password }) = other {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"));
                    rb = rb.header(AUTHORIZATION, format!("Basic {encoded}"));
                }
                rb
            }
        };
        let shown = super::transport::display_url(&url);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(match super::transport::classify(&self.registry, &url, e) {
                    Failure::Fatal(e) => e,
                    Failure::Retry(m) => RegistryError::Transport { url: shown, message: m },
                });
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            let detail = if self.credential.is_some() {
                ": the token server rejected the credentials (invalid username or password?)"
            } else {
                ": no credentials found and anonymous access was refused"
            };
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                detail: detail.to_string(),
            });
        }
        let body = response.bytes().await.map_err(|e| RegistryError::Transport {
            url: shown.clone(),
            message: error_detail(&e),
        })?;
        if !status.is_success() {
            return Err(RegistryError::Status {
                url: shown,
                status: status.as_u16(),
                detail: String::new(),
            });
        }
        let reply: TokenReply =
            serde_json::from_slice(&body).map_err(|_| RegistryError::Transport {
                url: shown.clone(),
                message: "the token server's answer is not JSON with a token".into(),
            })?;
        let token =
            reply.token.or(reply.access_token).filter(|t| !t.is_empty()).ok_or_else(|| {
                RegistryError::Transport {
                    url: shown,
                    message: "the token server sent no token".into(),
                }
            })?;
        let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(60).max(10));
        Ok((token, Some(started + lifetime)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quotes_commas_and_several_schemes() {
        let h = r#"Bearer realm="https://auth.example.io/token",service="registry.example.io",scope="repository:a/b:pull,push""#;
        assert_eq!(
            parse_challenges(h),
            vec![Challenge::Bearer {
                realm: "https://auth.example.io/token".into(),
                service: Some("registry.example.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }]
        );
        assert_eq!(parse_challenges(r#"Basic realm="kiln test""#), vec![Challenge::Basic]);
        assert_eq!(
            parse_challenges(r#"Negotiate, Basic realm="x", Bearer realm=http://t/tok, service=s"#),
            vec![
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "http://t/tok".into(),
                    service: Some("s".into()),
                    scope: None
                }
            ]
        );
        assert_eq!(
            parse_challenges(r#"bearer realm="a\"b""#),
            vec![Challenge::Bearer { realm: "a\"b".into(), service: None, scope: None }]
        );
        assert_eq!(parse_challenges("Bearer service=x"), vec![]);
        assert_eq!(parse_challenges(""), vec![]);
    }
}
