//! `--max-items`, `--starting-token` and `--page-size`, as the AWS CLI pages a list: requests
//! of `--page-size` items (the service's `Limit`) until `--max-items` are in hand, then a
//! `NextToken` naming where to go on. The token is the service's own marker.

use super::args::Paging;
use crate::error::Result;
use crate::kms::Page;

/// The items of one `--max-items` window, and the token for the rest if there is more.
pub(super) fn collect<T>(
    paging: &Paging,
    mut fetch: impl FnMut(Option<u32>, Option<&str>) -> Result<Page<T>>,
) -> Result<(Vec<T>, Option<String>)> {
    let mut items = Vec::new();
    let mut marker = paging.starting_token.clone();
    loop {
        let want = paging
            .max_items
            .map(|m| m.saturating_sub(items.len() as u32));
        let limit = match (paging.page_size, want) {
            (Some(p), Some(w)) => Some(p.min(w)),
            (p, w) => p.or(w),
        };
        let page = fetch(limit, marker.as_deref())?;
        items.extend(page.items);
        match page.next_marker {
            None => return Ok((items, None)),
            Some(next) if paging.max_items == Some(items.len() as u32) => {
                return Ok((items, Some(next)))
            }
            Some(next) => marker = Some(next),
        }
    }
}
