//! Finding images and containers by the names users type, as docker does: images by `name:tag`,
//! full id or unique id prefix; containers by full id, name or unique id prefix.

use crate::error::{Context, Error, Result};
use store::{ContainerRecord, DataRoot, Reference};

/// Returns the image id (`sha256:<hex>`) that `text` names.
pub fn image(root: &DataRoot, text: &str) -> Result<String> {
    let references = root.references().context("reading repositories.json")?;
    if let Ok(reference) = Reference::parse(text) {
        let key = reference.familiar();
        if let Some((_, image_id)) = references.iter().find(|(name, _)| *name == key) {
            return Ok(image_id.clone());
        }
    }
    // `name@sha256:<digest>`, recorded by pulls and pushes.
    if let Ok(named) = store::Named::parse(text) {
        if let Some(digest) = &named.digest {
            let key = named.with_digest(digest);
            if let Some((_, image_id)) = references.iter().find(|(name, _)| *name == key) {
                return Ok(image_id.clone());
            }
        }
    }
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if !hex.is_empty()
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        let matches: Vec<String> = root
            .images()?
            .into_iter()
            .filter(|id| id.trim_start_matches("sha256:").starts_with(hex))
            .collect();
        match matches.len() {
            1 => return Ok(matches.into_iter().next().unwrap_or_default()),
            0 => {}
            n_matches => {
                return Err(Error::Ambiguous {
                    what: "image",
                    prefix: text.to_string(),
                    n_matches,
                })
            }
        }
    }
    Err(Error::NotFound {
        what: "image",
        reference: text.to_string(),
    })
}

/// Returns the container record that `text` names.
pub fn container(root: &DataRoot, text: &str) -> Result<ContainerRecord> {
    let containers = root.containers().context("reading containers")?;
    let name = text.strip_prefix('/').unwrap_or(text);
    if let Some(found) = containers.iter().find(|c| c.id == text || c.name == name) {
        return Ok(found.clone());
    }
    let matches: Vec<&ContainerRecord> = containers
        .iter()
        .filter(|c| c.id.starts_with(text))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::NotFound {
            what: "container",
            reference: text.to_string(),
        }),
        _ => Err(Error::Ambiguous {
            what: "container",
            prefix: text.to_string(),
            n_matches: matches.len(),
        }),
    }
}

/// Familiar `repo@sha256:<digest>` names pointing at `image_id`, sorted (`RepoDigests`).
pub fn digests_of(references: &[(String, String)], image_id: &str) -> Vec<String> {
    let mut digests: Vec<String> = references
        .iter()
        .filter(|(name, id)| id == image_id && name.contains('@'))
        .map(|(name, _)| name.clone())
        .collect();
    digests.sort();
    digests
}

/// Familiar `repo:tag` names pointing at `image_id`, sorted.
pub fn tags_of(references: &[(String, String)], image_id: &str) -> Vec<String> {
    let mut tags: Vec<String> = references
        .iter()
        .filter(|(name, id)| id == image_id && !name.contains('@'))
        .map(|(name, _)| name.clone())
        .collect();
    tags.sort();
    tags
}
