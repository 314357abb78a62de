//! Email channels: SMTP with STARTTLS (the default), implicit TLS, or none for a relay
//! on the same machine, through lettre.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::message::Event;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain connect, then STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same machine.
    None,
}

/// An email channel's settings (its password is the channel's sealed secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name (checked against its certificate).
    pub host: String,
    /// Its port (default 587 for STARTTLS, 465 for TLS, 25 for none).
    #[serde(default)]
    pub port: Option<u16>,
    /// STARTTLS, TLS or none.
    #[serde(default)]
    pub tls: TlsMode,
    /// The user name to log in with, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// The sender.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// A CA certificate (PEM) to trust besides the system's, for a server with a
    /// private CA.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

impl EmailConfig {
    /// Checks the addresses and settings; the error names the field.
    ///
    /// # Errors
    /// (field, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_owned(), m));
        if self.host.is_empty() || self.host.len() > 253 || self.host.contains(['/', ' ']) {
            return bad("email.host", "a host name".to_owned());
        }
        let loopback = self.host == "localhost"
            || self
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if self.tls == TlsMode::None && !loopback {
            return bad(
                "email.tls",
                "none is only for a relay on this machine (localhost); use starttls or tls"
                    .to_owned(),
            );
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            return bad("email.from", format!("not an email address: {e}"));
        }
        if self.to.is_empty() || self.to.len() > 20 {
            return bad("email.to", "from 1 to 20 addresses".to_owned());
        }
        for (i, to) in self.to.iter().enumerate() {
            if let Err(e) = to.parse::<Mailbox>() {
                return bad(
                    &format!("email.to[{i}]"),
                    format!("not an email address: {e}"),
                );
            }
        }
        if let Some(pem) = &self.ca_pem {
            if let Err(e) = Certificate::from_pem(pem.as_bytes()) {
                return bad("email.ca_pem", format!("not a PEM certificate: {e}"));
            }
        }
        Ok(())
    }

    fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        })
    }
}

/// Sends `event` as an email, with `message_id` as its Message-ID.
///
/// # Errors
/// What went wrong, for the delivery's record (never the password).
pub async fn send(
    config: &EmailConfig,
    password: Option<Zeroizing<Vec<u8>>>,
    event: &Event,
    message_id: &str,
    timeout: Duration,
) -> Result<(), String> {
    let tls = match config.tls {
        TlsMode::None => Tls::None,
        mode => {
            let mut params = TlsParameters::builder(config.host.clone());
            if let Some(pem) = &config.ca_pem {
                let cert = Certificate::from_pem(pem.as_bytes())
                    .map_err(|e| format!("the channel's CA certificate: {e}"))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("TLS settings: {e}"))?;
            if mode == TlsMode::Starttls {
                Tls::Required(params)
            } else {
                Tls::Wrapper(params)
            }
        }
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
        .port(config.port())
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(user) = &config.username {
        let password = password
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        transport = transport.credentials(Credentials::new(user.clone(), password));
    }
    let transport = transport.build();
    let mut message = Message::builder()
        .from(config.from.parse().map_err(|e| format!("from: {e}"))?)
        .subject(event.subject())
        .message_id(Some(format!("<{message_id}@coffer>")))
        .header(ContentType::TEXT_PLAIN);
    for to in &config.to {
        message = message.to(to.parse().map_err(|e| format!("to: {e}"))?);
    }
    let message = message
        .body(event.text())
        .map_err(|e| format!("building the message: {e}"))?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", config.host, config.port()))
}
