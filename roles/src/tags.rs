//! Tags (`key:value`), as a node's configuration gives them and as pins carry them, checked
//! one way for both.

/// The most tags a node (or a pin) may have.
pub const MAX_TAGS: usize = 16;

/// Checks tags: at most [`MAX_TAGS`], each `key:value` of at most 64 bytes.
pub fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    for t in tags {
        let ok = t.len() <= 64 && t.split_once(':').is_some_and(|(k, _)| !k.is_empty());
        if !ok {
            return Err(format!("{t:?} is not key:value (at most 64 bytes)"));
        }
    }
    Ok(())
}
