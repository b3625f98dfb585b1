//! The download side: manifests, small blobs read whole, and layer blobs streamed with their
//! digest checked, resumed after a broken connection.

use std::io::{self, Read};

use gocompat::digest::Digest;
use sha2::{Digest as _, Sha256};

use crate::manifest;
use crate::transport::{self, header, pull_scope, Client, Method, Request};
use crate::{Error, Result};

/// A fetched manifest or index.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    /// `sha256:` of the bytes, checked against the reference's digest and the registry's
    /// `Docker-Content-Digest`.
    pub digest: String,
}

impl Client {
    /// `GET /v2/<path>/manifests/<reference>` (a tag or a digest), at most 4 MiB, its digest
    /// checked. `what` names the reference in errors.
    pub fn get_manifest(&self, path: &str, reference: &str, what: &str) -> Result<FetchedManifest> {
        let url = self.url(&format!("/v2/{path}/manifests/{reference}"));
        let request = Request::new(Method::Get, url.clone(), vec![pull_scope(path)])
            .header("Accept", manifest::ACCEPT);
        let response = self.send(request)?;
        if response.status().as_u16() == 404 {
            return Err(Error::NotFound {
                what: format!("manifest for {what}"),
                message: transport::error_message(response),
            });
        }
        let response = transport::expect_success(Method::Get, &url, response)?;
        if let Some(length) =
            header(&response, "content-length").and_then(|v| v.parse::<u64>().ok())
        {
            if length > manifest::MAX_MANIFEST_SIZE {
                return Err(Error::TooLarge {
                    what: format!("manifest of {what} ({length} bytes)"),
                    limit: manifest::MAX_MANIFEST_SIZE,
                });
            }
        }
        let content_type = header(&response, "content-type");
        let announced = header(&response, "docker-content-digest");
        let bytes = transport::read_limited(
            response,
            manifest::MAX_MANIFEST_SIZE,
            &format!("manifest of {what}"),
        )?;
        let digest = Digest::of(&bytes).to_string();
        if reference.starts_with("sha256:") && reference != digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {what}"),
                expected: reference.to_string(),
                actual: digest,
            });
        }
        if let Some(announced) = announced.filter(|d| d.starts_with("sha256:")) {
            if announced != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest of {what} (Docker-Content-Digest)"),
                    expected: announced,
                    actual: digest,
                });
            }
        }
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest,
        })
    }

    /// A whole blob of at most `limit` bytes (an image config), its digest checked.
    pub fn get_blob_bytes(&self, path: &str, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let mut reader = self.blob_reader(path, digest, None);
        let mut bytes = Vec::new();
        (&mut reader)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| reader.error(err))?;
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: format!("blob {digest} of {}/{path}", self.registry()),
                limit,
            });
        }
        reader.finish()?;
        Ok(bytes)
    }

    /// A streaming reader of a blob. `size`, when the manifest gives it, is enforced.
    pub fn blob_reader<'c>(
        &'c self,
        path: &str,
        digest: &str,
        size: Option<u64>,
    ) -> BlobReader<'c> {
        BlobReader {
            client: self,
            path: path.to_string(),
            digest: digest.to_string(),
            size,
            offset: 0,
            hasher: Sha256::new(),
            body: None,
            failures: 0,
            resumed: 0,
            restarted: 0,
            verified: false,
        }
    }
}

/// A blob as it downloads. Reads return the blob's bytes in order; a connection that breaks
/// is opened again with `Range: bytes=<offset>-`, and where the registry answers with the
/// whole blob instead, the bytes already read are skipped. The end of the blob is checked
/// against its size and digest before the last read returns 0.
pub struct BlobReader<'c> {
    client: &'c Client,
    path: String,
    digest: String,
    size: Option<u64>,
    offset: u64,
    hasher: Sha256,
    body: Option<ureq::BodyReader<'static>>,
    failures: u32,
    resumed: u32,
    restarted: u32,
    verified: bool,
}

impl std::fmt::Debug for BlobReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("registry", &self.client.registry())
            .field("path", &self.path)
            .field("digest", &self.digest)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl BlobReader<'_> {
    /// How many times the download went on with a range request, and how many times it
    /// started over.
    pub fn resumptions(&self) -> (u32, u32) {
        (self.resumed, self.restarted)
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads what is left and checks the digest.
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).map_err(|err| self.error(err))?;
        Ok(())
    }

    /// The registry error inside an I/O error of a read, or the I/O error named.
    pub fn error(&self, err: io::Error) -> Error {
        match err.downcast::<Error>() {
            Ok(inner) => inner,
            Err(err) => Error::Io {
                operation: "downloading",
                path: format!(
                    "blob {} of {}/{}",
                    self.digest,
                    self.client.registry(),
                    self.path
                )
                .into(),
                source: err,
            },
        }
    }

    fn what(&self) -> String {
        format!(
            "blob {} of {}/{}",
            self.digest,
            self.client.registry(),
            self.path
        )
    }

    /// Opens the download at the current offset.
    fn open(&mut self) -> Result<()> {
        let url = self
            .client
            .url(&format!("/v2/{}/blobs/{}", self.path, self.digest));
        let mut request = Request::new(Method::Get, url.clone(), vec![pull_scope(&self.path)]);
        if self.offset > 0 {
            request = request.header("Range", format!("bytes={}-", self.offset));
        }
        let response = self.client.send(request)?;
        let status = response.status().as_u16();
        if status == 404 {
            return Err(Error::NotFound {
                what: self.what(),
                message: transport::error_message(response),
            });
        }
        let response = transport::expect_success(Method::Get, &url, response)?;
        let partial = status == 206
            && header(&response, "content-range")
                .is_some_and(|range| range.starts_with(&format!("bytes {}-", self.offset)));
        let mut body = response.into_body().into_reader();
        if self.offset > 0 {
            if partial {
                self.resumed += 1;
            } else {
                // The whole blob again: skip what was already read (and hashed).
                self.restarted += 1;
                let skipped = io::copy(&mut (&mut body).take(self.offset), &mut io::sink())
                    .map_err(|source| Error::Io {
                        operation: "downloading",
                        path: self.what().into(),
                        source,
                    })?;
                if skipped != self.offset {
                    return Err(Error::invalid(
                        self.what(),
                        "the registry sent a shorter blob on a second request",
                    ));
                }
            }
            tracing::debug!(blob = %self.digest, offset = self.offset, partial, "download resumed");
        }
        self.body = Some(body);
        Ok(())
    }

    /// The digest check at the end of the blob.
    fn verify(&mut self) -> io::Result<()> {
        if let Some(size) = self.size {
            if self.offset != size {
                return Err(io::Error::other(Error::invalid(
                    self.what(),
                    format!(
                        "the registry sent {} bytes, the manifest says {size}",
                        self.offset
                    ),
                )));
            }
        }
        let actual = Digest::from_bytes(self.hasher.clone().finalize().into()).to_string();
        if actual != self.digest {
            return Err(io::Error::other(Error::DigestMismatch {
                what: self.what(),
                expected: self.digest.clone(),
                actual,
            }));
        }
        self.verified = true;
        Ok(())
    }

    /// After a broken read: waits and opens the download again, or gives up.
    fn recover(&mut self, err: io::Error) -> io::Result<()> {
        self.body = None;
        if self.failures >= self.client.retries() {
            return Err(err);
        }
        tracing::debug!(blob = %self.digest, offset = self.offset, error = %err, "download broken");
        std::thread::sleep(self.client.backoff(self.failures));
        self.failures += 1;
        Ok(())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.verified {
                return Ok(0);
            }
            if self.body.is_none() {
                if let Err(err) = self.open() {
                    let transient = matches!(&err, Error::Transport { source, .. } if transport::is_transient(source));
                    if transient {
                        self.recover(io::Error::other(err))?;
                        continue;
                    }
                    return Err(io::Error::other(err));
                }
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.read(buf) {
                Ok(0) => {
                    if self.size.is_some_and(|size| self.offset < size) {
                        let short = io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "{}: the connection ended at byte {}",
                                self.what(),
                                self.offset
                            ),
                        );
                        self.recover(short)?;
                        continue;
                    }
                    self.body = None;
                    self.verify()?;
                    return Ok(0);
                }
                Ok(n_read) => {
                    if self
                        .size
                        .is_some_and(|size| self.offset + n_read as u64 > size)
                    {
                        return Err(io::Error::other(Error::invalid(
                            self.what(),
                            "the registry sent more bytes than the manifest says",
                        )));
                    }
                    self.hasher.update(&buf[..n_read]);
                    self.offset += n_read as u64;
                    return Ok(n_read);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => self.recover(err)?,
            }
        }
    }
}
