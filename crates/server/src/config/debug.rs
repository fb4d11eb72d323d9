//! `Debug` for [`Config`], by hand so the JWT secret and the passwords in
//! database and NATS URLs never reach a log.

use super::Config;

impl std::fmt::Debug for Config {
    // Hand-written so the JWT secret and the database password never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("nats_url", &self.nats_url.as_deref().map(redact_url))
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("model", &self.model)
            .field("openai_base_url", &self.openai_base_url)
            .field("models", &self.models)
            .finish_non_exhaustive()
    }
}

/// `scheme://user:password@host/db` -> `scheme://user:***@host/db`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
