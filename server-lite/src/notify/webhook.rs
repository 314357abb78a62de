//! Webhook channels: an HTTP POST of the event's JSON, signed as Standard Webhooks
//! says (`webhook-id`, `webhook-timestamp`, `webhook-signature`), through the
//! specification's own library.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

/// A webhook channel's settings (its signing secret is the channel's sealed secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (http or https).
    pub url: Url,
}

impl WebhookConfig {
    /// Checks the URL; the error names the field.
    ///
    /// # Errors
    /// (field, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |m: &str| Err(("webhook.url".to_owned(), m.to_owned()));
        if !matches!(self.url.scheme(), "http" | "https") {
            return bad("http or https");
        }
        if self.url.host_str().is_none() {
            return bad("has no host");
        }
        if !self.url.username().is_empty() || self.url.password().is_some() {
            return bad("credentials in the URL would be stored in the clear; leave them out");
        }
        Ok(())
    }
}

/// A new signing secret, `whsec_` and 32 random bytes in base64, as Standard Webhooks
/// writes them.
pub fn new_secret() -> zeroize::Zeroizing<String> {
    use base64::Engine;
    use rand_core::RngCore;
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand_core::OsRng.fill_bytes(bytes.as_mut());
    zeroize::Zeroizing::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes.as_ref())
    ))
}

/// Whether `ip` is one a tenant's webhook must not reach unless the admin allows it.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) // CGNAT
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| private(IpAddr::V4(v4)))
        }
    }
}

/// POSTs `payload` to the channel's URL, signed with `secret`, as message `message_id`.
/// The host is resolved once and every address checked (unless private addresses are
/// allowed), and the request goes to the checked address, so a name cannot resolve
/// elsewhere between the check and the connection. Redirects are not followed.
///
/// # Errors
/// What went wrong, for the delivery's record.
pub async fn send(
    config: &WebhookConfig,
    secret: &str,
    payload: &str,
    message_id: &str,
    timeout: Duration,
    allow_private: bool,
) -> Result<(), String> {
    let url = &config.url;
    let host = url.host_str().ok_or("the URL has no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(timeout, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| format!("resolving {host} timed out"))?
            .map_err(|e| format!("resolving {host}: {e}"))?
            .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(format!("{host} has no address"));
    };
    if !allow_private {
        if let Some(a) = addrs.iter().find(|a| private(a.ip())) {
            return Err(format!(
                "{host} resolves to {} (loopback, private or link-local), which the server \
                 does not call unless started with --notify-allow-private-webhooks",
                a.ip()
            ));
        }
    }
    let signer = standardwebhooks::Webhook::new(secret)
        .map_err(|_| "the channel's signing secret is not valid base64".to_owned())?;
    // The timestamp is of this attempt, as the scheme says (receivers refuse old ones).
    let timestamp = jiff::Timestamp::now().as_second();
    let signature = signer
        .sign(message_id, timestamp, payload.as_bytes())
        .map_err(|e| format!("signing: {e}"))?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .resolve(bare, first)
        .user_agent(concat!("coffer-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let response = client
        .post(url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(payload.to_owned())
        .send()
        .await
        .map_err(|e| format!("POST {}: {e}", redacted(url)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("POST {}: answered {status}", redacted(url)))
    }
}

/// The URL without its query (which may carry a receiver's token) for the record.
fn redacted(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked() {
        let ok = |u: &str| {
            WebhookConfig {
                url: u.parse().unwrap(),
            }
            .check()
        };
        assert!(ok("https://hooks.example.com/x").is_ok());
        assert!(ok("ftp://example.com/").is_err());
        assert!(ok("https://user:pw@example.com/")
            .unwrap_err()
            .1
            .contains("credentials"));
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert!(standardwebhooks::Webhook::new(&s).is_ok());
    }
}
