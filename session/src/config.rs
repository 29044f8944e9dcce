//! Options from text: configuration files and environment variables. Every value goes
//! through the same rules as the `#[session(...)]` attribute, and the finished options
//! through the same combination checks.

use std::time::Duration;

use crate::options::{ConfigError, SessionOptions};
use crate::rules;
use crate::time;

/// Cookie keys may also be written `cookie.max_age`, `cookie_max_age`, `maxAge` and so on.
fn known_keys() -> impl Iterator<Item = &'static str> {
    rules::TOP_KEYS
        .iter()
        .chain(rules::COOKIE_KEYS)
        .copied()
        .filter(|k| *k != "cookie")
}

/// An option's name as an environment variable's suffix: `max_age` → `COOKIE_MAX_AGE`.
fn env_name(key: &str) -> String {
    let upper = key.to_ascii_uppercase();
    if rules::COOKIE_KEYS.contains(&key) {
        format!("COOKIE_{upper}")
    } else {
        upper
    }
}

fn normalize(key: &str) -> String {
    let k: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    match k.strip_prefix("cookie") {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => k,
    }
}

fn parse_bool(option: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ConfigError::invalid(
            option,
            format!("expected `true` or `false`, not \"{other}\""),
        )),
    }
}

impl SessionOptions {
    /// Sets one option from text, with the key named as in the attribute (`name`,
    /// `resave`, `cookie.max_age`, `same_site`, ...; express's camelCase names work too).
    ///
    /// ```
    /// let o = tessera::SessionOptions::default()
    ///     .set("cookie.max_age", "30m")?
    ///     .set("sameSite", "lax")?;
    /// assert!(o.set("maxage", "soon").is_err());
    /// # Ok::<(), tessera::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownOption`] (with the closest option) for a key that names
    /// none, and [`ConfigError::Invalid`] for a value its option's rule refuses.
    pub fn set(self, key: &str, value: &str) -> Result<Self, ConfigError> {
        let norm = normalize(key);
        let v = value.trim();
        Ok(match norm.as_str() {
            "name" | "key" => self.with_name(v)?,
            "rolling" => self.with_rolling(parse_bool("rolling", v)?),
            "resave" => self.with_resave(parse_bool("resave", v)?),
            "saveuninitialized" => {
                self.with_save_uninitialized(parse_bool("save_uninitialized", v)?)
            }
            "unset" => self.with_unset(v.parse()?),
            "proxy" => self.with_proxy(Some(parse_bool("proxy", v)?)),
            "maxage" => {
                let ms =
                    rules::parse_duration_ms(v).map_err(|m| ConfigError::invalid("max_age", m))?;
                self.with_max_age(Some(Duration::from_millis(ms)))?
            }
            "expires" => {
                let ms = time::parse_iso_date(v).ok_or_else(|| {
                    ConfigError::invalid(
                        "expires",
                        format!("expected an ISO-8601 date such as \"2027-01-01T00:00:00Z\", not \"{v}\""),
                    )
                })?;
                self.with_expires(Some(time::ms_to_system_time(ms)))
            }
            "idletimeout" => {
                let ms = rules::parse_duration_ms(v)
                    .map_err(|m| ConfigError::invalid("idle_timeout", m))?;
                self.with_idle_timeout(Some(Duration::from_millis(ms)))?
            }
            "absolutetimeout" => {
                let ms = rules::parse_duration_ms(v)
                    .map_err(|m| ConfigError::invalid("absolute_timeout", m))?;
                self.with_absolute_timeout(Some(Duration::from_millis(ms)))?
            }
            "idheader" => self.with_id_header(Some(v))?,
            "path" => self.with_path(v)?,
            "domain" => self.with_domain(Some(v))?,
            "httponly" => self.with_http_only(parse_bool("http_only", v)?),
            "secure" => self.with_secure(v.parse()?),
            "samesite" => self.with_same_site(Some(v.parse()?)),
            "partitioned" => self.with_partitioned(parse_bool("partitioned", v)?),
            "priority" => self.with_priority(Some(v.parse()?)),
            "secret" | "secrets" => {
                return Err(ConfigError::invalid(
                    "secret",
                    "secrets are not session options; pass them to SessionLayer::new \
                     (for example Secret::from_env(\"SESSION_SECRET\"))"
                        .to_owned(),
                ));
            }
            _ => {
                let keys: Vec<&'static str> = known_keys().collect();
                let suggestion = keys
                    .iter()
                    .copied()
                    .find(|k| normalize(k) == norm)
                    .or_else(|| rules::closest(&norm, &keys));
                return Err(ConfigError::UnknownOption {
                    key: key.to_owned(),
                    suggestion,
                });
            }
        })
    }

    /// Applies `(key, value)` pairs (for example from a configuration file), then
    /// [`SessionOptions::validate`]s the result.
    ///
    /// # Errors
    ///
    /// The first error of [`SessionOptions::set`], or of [`SessionOptions::validate`].
    pub fn with_config<'a>(
        self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut o = self;
        for (k, v) in pairs {
            o = o.set(k, v)?;
        }
        o.validate()?;
        Ok(o)
    }

    /// Applies every environment variable that starts with `prefix` and names an option
    /// (`SESSION_NAME`, `SESSION_COOKIE_MAX_AGE`, `SESSION_SAME_SITE`, ... with prefix
    /// `"SESSION_"`), then validates. `{prefix}SECRET` is left alone: secrets go to
    /// [`crate::Secret::from_env`]. Other variables that share the prefix (a desktop's
    /// `SESSION_MANAGER`) are not options and are skipped; one within two edits of an
    /// option (`SESSION_NAEM`) is skipped with a warning that names the option meant.
    /// An error names the variable.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`], naming the variable, for a value its option refuses; the
    /// errors of [`SessionOptions::validate`].
    pub fn with_env(self, prefix: &str) -> Result<Self, ConfigError> {
        let mut vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                k.strip_prefix(prefix)
                    .is_some_and(|key| !key.eq_ignore_ascii_case("secret"))
            })
            .collect();
        vars.sort();
        let mut o = self;
        for (var, value) in &vars {
            let key = &var[prefix.len()..];
            o = match o.clone().set(key, value) {
                Ok(next) => next,
                Err(ConfigError::UnknownOption { .. }) => {
                    let names: Vec<String> = known_keys()
                        .flat_map(|k| [env_name(k), k.to_ascii_uppercase()])
                        .collect();
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    match rules::near_miss(key, &names) {
                        Some(meant) => tracing::warn!(
                            variable = var.as_str(),
                            "environment variable `{var}` is not a session option; did you mean `{prefix}{meant}`?"
                        ),
                        None => tracing::debug!(
                            variable = var.as_str(),
                            "environment variable `{var}` shares the prefix but names no session option; skipped"
                        ),
                    }
                    o
                }
                Err(error) => {
                    return Err(ConfigError::Env {
                        variable: var.clone(),
                        source: Box::new(error),
                    });
                }
            };
        }
        o.validate()?;
        Ok(o)
    }

    /// Checks the combinations that browsers reject (`SameSite=None` or `Partitioned`
    /// without `Secure`, the `__Host-` and `__Secure-` prefix rules): the same rules the
    /// attribute checks at compile time.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`], naming the option to change, for a combination that
    /// browsers reject or timeouts that contradict each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.cookie;
        let settings = rules::CookieSettings {
            name: &self.name,
            secure: Some(c.secure),
            same_site: c.same_site,
            partitioned: c.partitioned,
            domain: c.domain.as_deref(),
            path: &c.path,
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let lifetimes = rules::Lifetimes {
            idle_ms: self.idle_timeout.map(ms),
            absolute_ms: self.absolute_timeout.map(ms),
            // The idle timeout set the max-age; another lifetime set later replaced it.
            cookie_lifetime: self.idle_timeout.is_some()
                && (c.max_age != self.idle_timeout || c.expires.is_some()),
            rolling: Some(self.rolling),
        };
        let errors = rules::check_combination(&settings)
            .into_iter()
            .chain(rules::check_lifetimes(&lifetimes));
        match errors.into_iter().next() {
            None => Ok(()),
            Some((culprit, message)) => Err(ConfigError::invalid(
                match culprit {
                    rules::Culprit::Name => "name",
                    rules::Culprit::SameSite => "same_site",
                    rules::Culprit::Partitioned => "partitioned",
                    rules::Culprit::Domain => "domain",
                    rules::Culprit::Path => "path",
                    rules::Culprit::IdleTimeout => "idle_timeout",
                    rules::Culprit::AbsoluteTimeout => "absolute_timeout",
                },
                message,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_accept_attribute_dotted_and_camel_case_names() {
        let o = SessionOptions::default()
            .set("cookie.max_age", "30m")
            .and_then(|o| o.set("COOKIE_SAME_SITE", "lax"))
            .and_then(|o| o.set("saveUninitialized", "false"))
            .and_then(|o| o.set("httpOnly", "true"))
            .unwrap();
        assert_eq!(o.cookie.max_age, Some(Duration::from_secs(1800)));
        assert_eq!(o.cookie.same_site, Some(crate::SameSite::Lax));
        assert!(!o.save_uninitialized);
    }

    #[test]
    fn unknown_config_key_suggests_the_near_one() {
        let err = SessionOptions::default().set("max_agee", "1h").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown session option `max_agee`; did you mean `max_age`?"
        );
    }
}
