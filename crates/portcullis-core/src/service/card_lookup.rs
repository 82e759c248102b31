//! Card lookups under every key of the registry keyring (docs/design/keys.md, "The registry
//! key"): a number's HMAC is computed under each key, always all of them (a known and an
//! unknown card cost the same), and a row matches only under its own key id.

use portcullis_crypto::KeyedHasher;

use super::Portcullis;
use crate::card::Credential;
use crate::card::VERIFICATION_DOMAIN;
use crate::ports::{RegistryRow, StoreResult};
use crate::registry::RecordKeys;

impl Portcullis {
    /// The keys a loaded record is hashed under (the registry push API).
    pub fn record_keys(&self) -> RecordKeys {
        match &self.registry_ring {
            None => RecordKeys {
                current_id: 1,
                current: self.keys.clone(),
                old: Vec::new(),
            },
            Some(ring) => RecordKeys::of(&ring.snapshot()),
        }
    }

    /// The registry keys, the current one first, with their ids.
    pub(crate) fn registry_keys(&self) -> Vec<(i64, KeyedHasher)> {
        match &self.registry_ring {
            None => vec![(1, self.keys.clone())],
            Some(ring) => ring
                .snapshot()
                .current_first()
                .map(|(id, key)| (i64::from(id), KeyedHasher::new(key.clone())))
                .collect(),
        }
    }

    /// The registry key `id`, re-reading the keyring file when this process does not know
    /// it yet (another node may have rotated first).
    pub(crate) fn registry_key(&self, id: i64) -> Option<KeyedHasher> {
        let Some(ring) = &self.registry_ring else {
            return (id == 1).then(|| self.keys.clone());
        };
        let id = u32::try_from(id).ok()?;
        let found = ring.snapshot().get(id).cloned();
        found
            .or_else(|| ring.refresh().get(id).cloned())
            .map(KeyedHasher::new)
    }

    /// The record whose number is `digits` (in `domain`), under whichever registry key it
    /// was written, with that key and the number's HMAC under it.
    pub(crate) async fn find_by_number(
        &self,
        domain: &str,
        digits: &str,
    ) -> StoreResult<Option<(RegistryRow, KeyedHasher, [u8; 32])>> {
        let mut found = None;
        for (id, key) in self.registry_keys() {
            let hash = key.hash(domain, &[digits.as_bytes()]);
            // Every key is asked, even after a match: the same reads for every number.
            if let Some(row) = self.ports.registry.find_record(id, &hash).await? {
                if found.is_none() {
                    found = Some((row, key, hash));
                }
            }
        }
        Ok(found)
    }

    /// The card's record and the HMAC of the given card ID (or merchant code) under the
    /// record's key, to compare with the stored one; without a record, the HMAC under the
    /// current key (computed all the same, so the timing is alike). With the hashes under
    /// the current key, for moving a record found under an old one (`move_card`).
    pub(crate) async fn find_card(&self, credential: &Credential) -> StoreResult<FoundCard> {
        let (domain, number) = credential.number_material();
        let verification = |key: &KeyedHasher, number_hash: &[u8; 32]| {
            key.hash(
                VERIFICATION_DOMAIN,
                &[number_hash, credential.verification_value().as_bytes()],
            )
        };
        let (current_id, current) = self
            .registry_keys()
            .into_iter()
            .next()
            .unwrap_or_else(|| (1, self.keys.clone()));
        let current_hash = current.hash(domain, &[number.as_bytes()]);
        let current = (
            current_id,
            current_hash,
            verification(&current, &current_hash),
        );
        Ok(match self.find_by_number(domain, number).await? {
            Some((row, key, hash)) => FoundCard {
                verification_hash: verification(&key, &hash),
                record: Some(row),
                current,
            },
            None => FoundCard {
                verification_hash: current.2,
                record: None,
                current,
            },
        })
    }

    /// Moves a card found under an old registry key to the current one, in `work` (called
    /// once its card ID was found right, so the hashes under the current key are the
    /// card's). A row moved meanwhile (an import, another node) is left as it is.
    pub(crate) async fn move_card(
        &self,
        work: &mut super::Work<'_>,
        record: &RegistryRow,
        found: &FoundCard,
    ) -> StoreResult<()> {
        let (to, number_hash, verification_hash) = &found.current;
        if record.key_id != *to {
            work.move_record(
                record.id,
                record.key_id,
                *to,
                number_hash,
                verification_hash,
            )
            .await?;
        }
        Ok(())
    }
}

/// A card looked up by number (`find_card`).
pub(crate) struct FoundCard {
    pub(crate) record: Option<RegistryRow>,
    /// The given card ID's HMAC under the record's key (the current key without a record).
    pub(crate) verification_hash: [u8; 32],
    /// The current key's id and the number's and the given card ID's HMACs under it.
    current: (i64, [u8; 32], [u8; 32]),
}
