//! The S3 XML bodies the embedded store answers with, in the shapes rusty-s3 and the
//! adapters' S3 client parse.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::db::uploads::Part;

const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Escapes text for an XML element.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An XML answer.
pub fn xml(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
    )
        .into_response()
}

/// An S3 error answer.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<Error><Code>{}</Code><Message>{}</Message></Error>",
            escape(code),
            escape(message)
        ),
    )
}

/// `CreateMultipartUpload`'s answer.
pub fn initiated(bucket: &str, key: &str, upload_id: &str) -> Response {
    xml(
        StatusCode::OK,
        format!(
            "<InitiateMultipartUploadResult xmlns=\"{NS}\"><Bucket>{}</Bucket><Key>{}</Key>\
             <UploadId>{}</UploadId></InitiateMultipartUploadResult>",
            escape(bucket),
            escape(key),
            escape(upload_id)
        ),
    )
}

/// `ListParts`' answer (never truncated: at most 10 000 parts).
pub fn list_parts(bucket: &str, key: &str, upload_id: &str, parts: &[Part]) -> Response {
    let mut body = format!(
        "<ListPartsResult xmlns=\"{NS}\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId>\
         <PartNumberMarker>0</PartNumberMarker><MaxParts>10000</MaxParts>\
         <IsTruncated>false</IsTruncated>",
        escape(bucket),
        escape(key),
        escape(upload_id)
    );
    for p in parts {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><LastModified>1970-01-01T00:00:00.000Z</LastModified>\
             <ETag>\"{}\"</ETag><Size>{}</Size>",
            p.number,
            escape(&p.etag),
            p.size
        ));
        if let Some(sum) = &p.sha256 {
            body.push_str(&format!("<ChecksumSHA256>{}</ChecksumSHA256>", escape(sum)));
        }
        body.push_str("</Part>");
    }
    body.push_str("</ListPartsResult>");
    xml(StatusCode::OK, body)
}

/// `CompleteMultipartUpload`'s answer.
pub fn completed(location: &str, bucket: &str, key: &str, etag: &str) -> Response {
    xml(
        StatusCode::OK,
        format!(
            "<CompleteMultipartUploadResult xmlns=\"{NS}\"><Location>{}</Location>\
             <Bucket>{}</Bucket><Key>{}</Key><ETag>\"{}\"</ETag>\
             </CompleteMultipartUploadResult>",
            escape(location),
            escape(bucket),
            escape(key),
            escape(etag)
        ),
    )
}
