//! Decoding the registries' logs into typed events.

use alloy::primitives::{Address, B256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use medrec_bindings::{ConsentRegistry, ParticipantRegistry, RecordRegistry};

/// A decoded event of one of the registries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Event {
    CredentialIssued {
        account: Address,
        role: u8,
        reference: B256,
        issued_at: u64,
        expires_at: u64,
    },
    CredentialRevoked {
        account: Address,
        role: u8,
        revoked_at: u64,
    },
    Granted {
        patient: Address,
        grantee: Address,
        by: Address,
        categories: u64,
        purpose: u8,
        not_before: u64,
        expires_at: u64,
    },
    Revoked {
        patient: Address,
        grantee: Address,
        by: Address,
    },
    GuardianSet {
        patient: Address,
        guardian: Address,
        scope: u64,
        not_before: u64,
        expires_at: u64,
    },
    GuardianRemoved {
        patient: Address,
        guardian: Address,
    },
    EmergencyOpened {
        patient: Address,
        provider: Address,
        reason_hash: B256,
        opened_at: u64,
        expires_at: u64,
    },
    EmergencyClosed {
        patient: Address,
        provider: Address,
        by: Address,
    },
    EmergencyCapSet {
        cap: u64,
    },
    PointerAnchored {
        record_id: B256,
        patient: Address,
        holder: Address,
        category: u8,
        content_hash: B256,
        locator: String,
    },
    PointerSuperseded {
        old_record_id: B256,
        new_record_id: B256,
    },
    AccessLogAnchored {
        holder: Address,
        head: B256,
        entries: u64,
        anchored_at: u64,
    },
}

/// An event with its position on the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Block number.
    pub block_number: u64,
    /// The block's hash, as the log reported it.
    pub block_hash: B256,
    /// Index of the log in its block.
    pub log_index: u32,
    /// The transaction's hash.
    pub tx_hash: B256,
    /// The event.
    pub event: Event,
}

/// The topics the indexer asks for (events of the registries that carry domain state).
pub fn topics() -> Vec<B256> {
    vec![
        ParticipantRegistry::CredentialIssued::SIGNATURE_HASH,
        ParticipantRegistry::CredentialRevoked::SIGNATURE_HASH,
        ConsentRegistry::Granted::SIGNATURE_HASH,
        ConsentRegistry::Revoked::SIGNATURE_HASH,
        ConsentRegistry::GuardianSet::SIGNATURE_HASH,
        ConsentRegistry::GuardianRemoved::SIGNATURE_HASH,
        ConsentRegistry::EmergencyAccessOpened::SIGNATURE_HASH,
        ConsentRegistry::EmergencyAccessClosed::SIGNATURE_HASH,
        ConsentRegistry::EmergencyCapSet::SIGNATURE_HASH,
        RecordRegistry::PointerAnchored::SIGNATURE_HASH,
        RecordRegistry::PointerSuperseded::SIGNATURE_HASH,
        RecordRegistry::AccessLogAnchored::SIGNATURE_HASH,
    ]
}

fn u(v: alloy::primitives::aliases::U40) -> u64 {
    v.to()
}

/// Decodes one log; `Ok(None)` for a log that is not one of the indexed events.
pub fn decode(log: &Log) -> Result<Option<LogEvent>, String> {
    let (Some(block_number), Some(block_hash), Some(log_index), Some(tx_hash)) = (
        log.block_number,
        log.block_hash,
        log.log_index,
        log.transaction_hash,
    ) else {
        return Err("log without block, index or transaction (pending?)".into());
    };
    let Some(topic0) = log.topic0().copied() else {
        return Ok(None);
    };
    let err =
        |e: alloy::sol_types::Error| format!("cannot decode log {block_number}/{log_index}: {e}");
    let event = match topic0 {
        t if t == ParticipantRegistry::CredentialIssued::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ParticipantRegistry::CredentialIssued>()
                .map_err(err)?
                .inner
                .data;
            Event::CredentialIssued {
                account: e.account,
                role: e.role,
                reference: e.r#ref,
                issued_at: u(e.issuedAt),
                expires_at: u(e.expiresAt),
            }
        }
        t if t == ParticipantRegistry::CredentialRevoked::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ParticipantRegistry::CredentialRevoked>()
                .map_err(err)?
                .inner
                .data;
            Event::CredentialRevoked {
                account: e.account,
                role: e.role,
                revoked_at: u(e.revokedAt),
            }
        }
        t if t == ConsentRegistry::Granted::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ConsentRegistry::Granted>()
                .map_err(err)?
                .inner
                .data;
            Event::Granted {
                patient: e.patient,
                grantee: e.grantee,
                by: e.by,
                categories: e.categories,
                purpose: e.purpose,
                not_before: u(e.notBefore),
                expires_at: u(e.expiresAt),
            }
        }
        t if t == ConsentRegistry::Revoked::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ConsentRegistry::Revoked>()
                .map_err(err)?
                .inner
                .data;
            Event::Revoked {
                patient: e.patient,
                grantee: e.grantee,
                by: e.by,
            }
        }
        t if t == ConsentRegistry::GuardianSet::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ConsentRegistry::GuardianSet>()
                .map_err(err)?
                .inner
                .data;
            Event::GuardianSet {
                patient: e.patient,
                guardian: e.guardian,
                scope: e.scope,
                not_before: u(e.notBefore),
                expires_at: u(e.expiresAt),
            }
        }
        t if t == ConsentRegistry::GuardianRemoved::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ConsentRegistry::GuardianRemoved>()
                .map_err(err)?
                .inner
                .data;
            Event::GuardianRemoved {
                patient: e.patient,
                guardian: e.guardian,
            }
        }
        t if t == ConsentRegistry::EmergencyAccessOpened::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ConsentRegistry::EmergencyAccessOpened>()
                .map_err(err)?
                .inner
                .data;
            Event::EmergencyOpened {
                patient: e.patient,
                provider: e.provider,
                reason_hash: e.reasonHash,
                opened_at: u(e.openedAt),
                expires_at: u(e.expiresAt),
            }
        }
        t if t == ConsentRegistry::EmergencyAccessClosed::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ConsentRegistry::EmergencyAccessClosed>()
                .map_err(err)?
                .inner
                .data;
            Event::EmergencyClosed {
                patient: e.patient,
                provider: e.provider,
                by: e.by,
            }
        }
        t if t == ConsentRegistry::EmergencyCapSet::SIGNATURE_HASH => {
            let e = log
                .log_decode::<ConsentRegistry::EmergencyCapSet>()
                .map_err(err)?
                .inner
                .data;
            Event::EmergencyCapSet { cap: u(e.cap) }
        }
        t if t == RecordRegistry::PointerAnchored::SIGNATURE_HASH => {
            let e = log
                .log_decode::<RecordRegistry::PointerAnchored>()
                .map_err(err)?
                .inner
                .data;
            Event::PointerAnchored {
                record_id: e.recordId,
                patient: e.patient,
                holder: e.holder,
                category: e.category,
                content_hash: e.contentHash,
                locator: e.locator,
            }
        }
        t if t == RecordRegistry::PointerSuperseded::SIGNATURE_HASH => {
            let e = log
                .log_decode::<RecordRegistry::PointerSuperseded>()
                .map_err(err)?
                .inner
                .data;
            Event::PointerSuperseded {
                old_record_id: e.oldRecordId,
                new_record_id: e.newRecordId,
            }
        }
        t if t == RecordRegistry::AccessLogAnchored::SIGNATURE_HASH => {
            let e = log
                .log_decode::<RecordRegistry::AccessLogAnchored>()
                .map_err(err)?
                .inner
                .data;
            Event::AccessLogAnchored {
                holder: e.holder,
                head: e.head,
                entries: e.entries,
                anchored_at: u(e.anchoredAt),
            }
        }
        _ => return Ok(None),
    };
    let log_index = u32::try_from(log_index).map_err(|_| "log index out of range".to_string())?;
    Ok(Some(LogEvent {
        block_number,
        block_hash,
        log_index,
        tx_hash,
        event,
    }))
}
