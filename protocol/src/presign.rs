//! Pre-signed storage requests (`POST /v1/agent/presign`): the agent names an operation
//! of the storage layer's [`PresignOp`] and a key relative to its destination; the
//! server answers with a URL and the headers it signed.
//!
//! [`PresignRequest::of`] and [`PresignRequest::op`] are the one mapping between the
//! two, used by the agent to ask and by the server to sign.

use coffer_adapters::storage::{ObjectKey, PresignOp, PresignedRequest};
use serde::{Deserialize, Serialize};

/// A request for one pre-signed URL. `key` is relative to the agent's destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum PresignRequest {
    /// Store one object. Agents only create: `create_only` absent means `true`.
    Put {
        /// The object.
        key: String,
        /// Refuse (412) if the key holds an object.
        #[serde(default = "yes")]
        create_only: bool,
        /// The body's SHA-256, base64: the URL works for that body only.
        #[serde(default)]
        checksum_sha256: Option<String>,
    },
    /// Read an object.
    Get {
        /// The object.
        key: String,
    },
    /// Read an object's size.
    Head {
        /// The object.
        key: String,
    },
    /// Delete an object (the server refuses it to agents).
    Delete {
        /// The object.
        key: String,
    },
    /// Start a multipart upload.
    CreateMultipart {
        /// The object.
        key: String,
        /// Whether parts carry SHA-256 checksums.
        #[serde(default)]
        checksum_sha256: bool,
    },
    /// Upload one part.
    UploadPart {
        /// The object.
        key: String,
        /// The upload.
        upload_id: String,
        /// 1 to 10 000.
        part_number: u16,
        /// The part's SHA-256, base64.
        #[serde(default)]
        checksum_sha256: Option<String>,
    },
    /// List an upload's parts.
    ListParts {
        /// The object.
        key: String,
        /// The upload.
        upload_id: String,
    },
    /// Assemble the parts. Agents only create: `create_only` absent means `true`.
    CompleteMultipart {
        /// The object.
        key: String,
        /// The upload.
        upload_id: String,
        /// Refuse (412) if the key holds an object.
        #[serde(default = "yes")]
        create_only: bool,
    },
    /// Abandon an upload.
    AbortMultipart {
        /// The object.
        key: String,
        /// The upload.
        upload_id: String,
    },
    /// List one page of the objects under `key` taken as a folder.
    List {
        /// The folder (the listing's prefix is it and a `/`).
        key: String,
        /// The previous page's continuation token.
        #[serde(default)]
        continuation_token: Option<String>,
        /// Keys per page, 1 to 1000.
        #[serde(default = "page")]
        max_keys: u16,
    },
}

fn yes() -> bool {
    true
}

fn page() -> u16 {
    1000
}

impl PresignRequest {
    /// The request for `op` on `key`; `None` for an operation this contract lacks.
    #[must_use]
    pub fn of(op: PresignOp<'_>, key: &ObjectKey) -> Option<Self> {
        let key = key.as_str().to_owned();
        let owned = |s: &str| s.to_owned();
        Some(match op {
            PresignOp::Get => PresignRequest::Get { key },
            PresignOp::Head => PresignRequest::Head { key },
            PresignOp::Delete => PresignRequest::Delete { key },
            PresignOp::Put {
                create_only,
                checksum_sha256,
            } => PresignRequest::Put {
                key,
                create_only,
                checksum_sha256: checksum_sha256.map(owned),
            },
            PresignOp::CreateMultipartUpload { checksum_sha256 } => {
                PresignRequest::CreateMultipart {
                    key,
                    checksum_sha256,
                }
            }
            PresignOp::UploadPart {
                upload_id,
                part_number,
                checksum_sha256,
            } => PresignRequest::UploadPart {
                key,
                upload_id: upload_id.to_owned(),
                part_number,
                checksum_sha256: checksum_sha256.map(owned),
            },
            PresignOp::ListParts { upload_id } => PresignRequest::ListParts {
                key,
                upload_id: upload_id.to_owned(),
            },
            PresignOp::CompleteMultipartUpload {
                upload_id,
                create_only,
            } => PresignRequest::CompleteMultipart {
                key,
                upload_id: upload_id.to_owned(),
                create_only,
            },
            PresignOp::AbortMultipartUpload { upload_id } => PresignRequest::AbortMultipart {
                key,
                upload_id: upload_id.to_owned(),
            },
            PresignOp::List {
                continuation_token,
                max_keys,
            } => PresignRequest::List {
                key,
                continuation_token: continuation_token.map(owned),
                max_keys,
            },
            _ => return None,
        })
    }

    /// The relative key (or, for a listing, folder) the request names.
    #[must_use]
    pub fn key(&self) -> &str {
        match self {
            PresignRequest::Put { key, .. }
            | PresignRequest::Get { key }
            | PresignRequest::Head { key }
            | PresignRequest::Delete { key }
            | PresignRequest::CreateMultipart { key, .. }
            | PresignRequest::UploadPart { key, .. }
            | PresignRequest::ListParts { key, .. }
            | PresignRequest::CompleteMultipart { key, .. }
            | PresignRequest::AbortMultipart { key, .. }
            | PresignRequest::List { key, .. } => key,
        }
    }

    /// The storage operation asked for.
    #[must_use]
    pub fn op(&self) -> PresignOp<'_> {
        match self {
            PresignRequest::Put {
                create_only,
                checksum_sha256,
                ..
            } => PresignOp::Put {
                create_only: *create_only,
                checksum_sha256: checksum_sha256.as_deref(),
            },
            PresignRequest::Get { .. } => PresignOp::Get,
            PresignRequest::Head { .. } => PresignOp::Head,
            PresignRequest::Delete { .. } => PresignOp::Delete,
            PresignRequest::CreateMultipart {
                checksum_sha256, ..
            } => PresignOp::CreateMultipartUpload {
                checksum_sha256: *checksum_sha256,
            },
            PresignRequest::UploadPart {
                upload_id,
                part_number,
                checksum_sha256,
                ..
            } => PresignOp::UploadPart {
                upload_id,
                part_number: *part_number,
                checksum_sha256: checksum_sha256.as_deref(),
            },
            PresignRequest::ListParts { upload_id, .. } => PresignOp::ListParts { upload_id },
            PresignRequest::CompleteMultipart {
                upload_id,
                create_only,
                ..
            } => PresignOp::CompleteMultipartUpload {
                upload_id,
                create_only: *create_only,
            },
            PresignRequest::AbortMultipart { upload_id, .. } => {
                PresignOp::AbortMultipartUpload { upload_id }
            }
            PresignRequest::List {
                continuation_token,
                max_keys,
                ..
            } => PresignOp::List {
                continuation_token: continuation_token.as_deref(),
                max_keys: *max_keys,
            },
        }
    }
}

/// The server's answer: send `method` to `url` with exactly `headers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignAnswer {
    /// The HTTP method.
    pub method: String,
    /// The URL, signature in its query.
    pub url: String,
    /// The signed headers, `[name, value]`.
    pub headers: Vec<(String, String)>,
    /// When the URL stops working (RFC 3339).
    pub expires_at: String,
}

/// The methods a pre-signed request may use.
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "DELETE", "POST"];

/// The signed headers the storage layer sends; the server may sign only these.
const KNOWN_HEADERS: [&str; 4] = [
    "x-amz-checksum-sha256",
    "x-amz-checksum-mode",
    "x-amz-checksum-algorithm",
    "if-none-match",
];

impl PresignAnswer {
    /// The answer for `request`, valid until `expires_at`.
    #[must_use]
    pub fn new(request: &PresignedRequest, expires_at: String) -> Self {
        PresignAnswer {
            method: request.method.to_owned(),
            url: request.url.clone(),
            headers: request
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
            expires_at,
        }
    }

    /// The request to send, checked: a known method, an http(s) URL, and only headers
    /// the storage layer knows how to send.
    ///
    /// # Errors
    /// What is wrong with the answer.
    pub fn into_request(self) -> Result<PresignedRequest, String> {
        let upper = self.method.to_ascii_uppercase();
        let method = METHODS
            .iter()
            .copied()
            .find(|m| *m == upper)
            .ok_or_else(|| format!("unknown method {:?}", self.method))?;
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err("not an http(s) URL".into());
        }
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in self.headers {
            let known = KNOWN_HEADERS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&name))
                .ok_or_else(|| {
                    format!("the server signed a header this agent does not send: {name}")
                })?;
            headers.push((*known, value));
        }
        Ok(PresignedRequest {
            method,
            url: self.url,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_storage_operation_maps_both_ways() {
        let key = ObjectKey::new("repo/data/ab/cd").unwrap();
        let ops = [
            PresignOp::Get,
            PresignOp::Head,
            PresignOp::Delete,
            PresignOp::Put {
                create_only: true,
                checksum_sha256: Some("abc="),
            },
            PresignOp::CreateMultipartUpload {
                checksum_sha256: true,
            },
            PresignOp::UploadPart {
                upload_id: "u1",
                part_number: 7,
                checksum_sha256: None,
            },
            PresignOp::ListParts { upload_id: "u1" },
            PresignOp::CompleteMultipartUpload {
                upload_id: "u1",
                create_only: true,
            },
            PresignOp::AbortMultipartUpload { upload_id: "u1" },
            PresignOp::List {
                continuation_token: Some("t"),
                max_keys: 10,
            },
        ];
        for op in ops {
            let request = PresignRequest::of(op, &key).unwrap();
            let wire = serde_json::to_string(&request).unwrap();
            let back: PresignRequest = serde_json::from_str(&wire).unwrap();
            assert_eq!(back.op(), op, "{wire}");
            assert_eq!(back.key(), key.as_str());
        }
    }

    #[test]
    fn create_only_is_the_default_and_unknown_fields_or_ops_are_refused() {
        let put: PresignRequest = serde_json::from_value(json!({"op": "put", "key": "a"})).unwrap();
        assert_eq!(
            put.op(),
            PresignOp::Put {
                create_only: true,
                checksum_sha256: None
            }
        );
        assert!(serde_json::from_value::<PresignRequest>(
            json!({"op": "put", "key": "a", "overwrite": true})
        )
        .is_err());
        assert!(
            serde_json::from_value::<PresignRequest>(json!({"op": "copy", "key": "a"})).is_err()
        );
        let list: PresignRequest =
            serde_json::from_value(json!({"op": "list", "key": "index"})).unwrap();
        assert_eq!(
            list.op(),
            PresignOp::List {
                continuation_token: None,
                max_keys: 1000
            }
        );
    }

    #[test]
    fn answers_are_checked_before_use() {
        let answer = |method: &str, url: &str, headers: Vec<(&str, &str)>| PresignAnswer {
            method: method.into(),
            url: url.into(),
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
            expires_at: "2026-11-23T12:00:00Z".into(),
        };
        let ok = answer(
            "put",
            "https://s3/x?X-Amz-Signature=s",
            vec![("If-None-Match", "*"), ("x-amz-checksum-sha256", "abc=")],
        )
        .into_request()
        .unwrap();
        assert_eq!(ok.method, "PUT");
        assert_eq!(
            ok.headers,
            vec![
                ("if-none-match", "*".to_owned()),
                ("x-amz-checksum-sha256", "abc=".to_owned())
            ]
        );
        assert!(answer("PUT", "https://s3/x", vec![("authorization", "x")])
            .into_request()
            .is_err());
        assert!(answer("PUT", "file:///etc/passwd", vec![])
            .into_request()
            .is_err());
        assert!(answer("PATCH", "https://s3/x", vec![])
            .into_request()
            .is_err());
    }
}
