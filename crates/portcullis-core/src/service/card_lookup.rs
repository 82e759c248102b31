//! Card lookups under every key of the registry keyring (docs/design/keys.md, "The registry
//! key"): a number's HMAC is computed under each key, always all of them (a known and an
//! unknown card cost the same), and a row matches only under its own key id.

use portcullis_crypto::KeyedHasher;

use super::Portcullis;
use crate::card::Credential;
use crate::card::VERIFICATION_DOMAIN;
use crate::ports::{RegistryRow, StoreResult};

impl Portcullis {
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
    /// current key (computed all the same, so the timing is alike).
    pub(crate) async fn find_card(
        &self,
        credential: &Credential,
    ) -> StoreResult<(Option<RegistryRow>, [u8; 32])> {
        let (domain, number) = credential.number_material();
        let verification = |key: &KeyedHasher, number_hash: &[u8; 32]| {
            key.hash(
                VERIFICATION_DOMAIN,
                &[number_hash, credential.verification_value().as_bytes()],
            )
        };
        match self.find_by_number(domain, number).await? {
            Some((row, key, hash)) => {
                let v = verification(&key, &hash);
                Ok((Some(row), v))
            }
            None => {
                let key = self.keys.clone();
                let hash = key.hash(domain, &[number.as_bytes()]);
                Ok((None, verification(&key, &hash)))
            }
        }
    }
}
