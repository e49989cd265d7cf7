//! Two offices, two trees, one hub witness, in one process: the hub cosigns each
//! office's checkpoints while they extend what it cosigned before, refuses an office
//! that rewrote one old event and re-signed, and the offices can check the hub.

use coord_audit::cosign::{CosignatureVerifier, Cosigner, Witness, WitnessError};
use coord_audit::tree::leaf_hash;
use coord_audit::{Checkpoint, Signer, Tree};

/// One office's log: its tree of leaves and its key.
struct Office {
    signer: Signer,
    leaves: Vec<Vec<u8>>,
}

impl Office {
    fn new(origin: &str, seed: u8) -> Self {
        Self {
            signer: Signer::from_seed(origin, [seed; 32]).unwrap(),
            leaves: Vec::new(),
        }
    }
    fn append(&mut self, n: usize) {
        for _ in 0..n {
            let i = self.leaves.len();
            self.leaves
                .push(format!("{{\"office\":\"{}\",\"n\":{i}}}", self.signer.name()).into_bytes());
        }
    }
    fn tree(&self) -> Tree {
        Tree::from_leaves(self.leaves.iter().map(|l| leaf_hash(l)))
    }
    /// A signed checkpoint of the whole tree and the consistency proof from `from`.
    fn publish(&self, from: u64) -> (String, Vec<[u8; 32]>) {
        let tree = self.tree();
        let size = tree.len();
        let note = Checkpoint {
            origin: self.signer.name().into(),
            size,
            root: tree.root(size).unwrap(),
        }
        .sign(&self.signer);
        let proof = if from == 0 {
            Vec::new()
        } else {
            tree.consistency(from, size).unwrap()
        };
        (note, proof)
    }
}

fn hub() -> (Witness, CosignatureVerifier, Office, Office) {
    let cosigner = Cosigner::from_seed("coord/an-giang/hub-witness", [42; 32]).unwrap();
    let hub_key = cosigner.verifier();
    let mut witness = Witness::new(cosigner);
    let province = Office::new("coord/an-giang/province", 1);
    let district = Office::new("coord/an-giang/district:long-xuyen", 2);
    witness.watch(province.signer.verifier().clone());
    witness.watch(district.signer.verifier().clone());
    (witness, hub_key, province, district)
}

fn cosigned_size(w: &Witness, o: &Office) -> u64 {
    w.last(o.signer.name()).map_or(0, |c| c.size)
}

#[test]
fn given_two_honest_offices_then_every_checkpoint_is_cosigned_and_the_offices_can_check_the_hub() {
    let (mut witness, hub_key, mut province, mut district) = hub();
    for round in 1..=3u64 {
        for office in [&mut province, &mut district] {
            office.append(5 + round as usize);
            let (note, proof) = office.publish(cosigned_size(&witness, office));
            let cosigned = witness.add(&note, &proof, 1_700_000_000 + round).unwrap();
            // The office (or anyone) checks the hub's cosignature with the hub's vkey.
            let key: CosignatureVerifier = hub_key.to_string().parse().unwrap();
            assert_eq!(key.verify(&cosigned).unwrap(), 1_700_000_000 + round);
            // A cosignature moved onto another checkpoint does not verify.
            let line = &cosigned[note.len()..];
            let other = Checkpoint {
                origin: office.signer.name().into(),
                size: 1,
                root: [0; 32],
            }
            .sign(&office.signer);
            assert!(key.verify(&format!("{other}{line}")).is_err());
        }
    }
    assert_eq!(cosigned_size(&witness, &province), 6 + 7 + 8);
}

#[test]
fn given_an_office_that_rewrites_one_old_event_and_resigns_then_the_hub_refuses_it() {
    let (mut witness, _, mut province, mut district) = hub();
    district.append(20);
    province.append(20);
    for office in [&province, &district] {
        let (note, proof) = office.publish(0);
        witness.add(&note, &proof, 1).unwrap();
    }
    // The district rewrites event 7, appends more, and signs with its own valid key.
    district.leaves[7] = b"{\"rewritten\":true}".to_vec();
    district.append(4);
    let (note, proof) = district.publish(20);
    let err = witness.add(&note, &proof, 2).unwrap_err();
    assert!(
        matches!(
            err,
            WitnessError::Inconsistent {
                old: 20,
                new: 24,
                ..
            }
        ),
        "{err}"
    );
    // Nothing changed for the district at the hub, and the province goes on.
    assert_eq!(cosigned_size(&witness, &district), 20);
    province.append(3);
    let (note, proof) = province.publish(20);
    witness.add(&note, &proof, 3).unwrap();
    // Shrinking, or a checkpoint by an unknown key, is refused too.
    let mut shrunk = Office::new("coord/an-giang/province", 1);
    shrunk.append(2);
    assert!(matches!(
        witness.add(&shrunk.publish(0).0, &[], 4),
        Err(WitnessError::Shrunk { .. })
    ));
    let stranger = Office::new("coord/an-giang/province", 9);
    assert!(matches!(
        witness.add(&stranger.publish(0).0, &[], 5),
        Err(WitnessError::Checkpoint(_))
    ));
}

#[test]
fn given_two_office_witnesses_when_their_cosignatures_of_the_province_come_then_both_are_kept_once()
{
    let mut province = Office::new("coord/x/province", 1);
    province.append(3);
    let (note, _) = province.publish(0);
    let body = coord_audit::note::Note::parse(&note).unwrap().text;
    let lx = Cosigner::from_seed("coord/x/district:lx/witness", [2; 32]).unwrap();
    let cd = Cosigner::from_seed("coord/x/district:cd/witness", [3; 32]).unwrap();
    let by = |c: &Cosigner| format!("{note}{}", c.cosign(&body, 1_700_000_000));
    let merge = coord_audit::cosign::merge_cosignature;

    let kept = merge(&note, &by(&lx), &lx.verifier()).expect("Long Xuyên's is added");
    let kept = merge(&kept, &by(&cd), &cd.verifier()).expect("Châu Đốc's is added");
    lx.verifier().verify(&kept).unwrap();
    cd.verifier().verify(&kept).unwrap();
    Checkpoint::open(
        &kept,
        "coord/x/province",
        &[province.signer.verifier().clone()],
    )
    .unwrap();
    assert_eq!(
        merge(&kept, &by(&lx), &lx.verifier()),
        None,
        "one per witness"
    );

    // A cosignature made with another key under Long Xuyên's name is not kept, nor one
    // over another body.
    let impostor = Cosigner::from_seed("coord/x/district:lx/witness", [9; 32]).unwrap();
    assert_eq!(merge(&note, &by(&impostor), &lx.verifier()), None);
    province.append(1);
    let (other, _) = province.publish(3);
    let other_body = coord_audit::note::Note::parse(&other).unwrap().text;
    let elsewhere = format!("{other}{}", lx.cosign(&other_body, 1));
    assert_eq!(merge(&note, &elsewhere, &lx.verifier()), None);
}

// C2SP: a checkpoint may carry extension lines after its root, and a cosignature signs
// the note's whole text. The witness's cosignature of such a note verifies.
#[test]
fn given_a_checkpoint_with_an_extension_line_then_its_cosignature_verifies() {
    let (witness, hub_key, mut province, _) = hub();
    province.append(3);
    let tree = province.tree();
    let checkpoint = Checkpoint {
        origin: province.signer.name().into(),
        size: 3,
        root: tree.root(3).unwrap(),
    };
    let text = format!("{}extension line\n", checkpoint.to_text());
    let note = province.signer.sign(&text).unwrap();
    let checked = witness.check(&note, &[]).unwrap();
    let cosigned = witness.cosign(&note, &checked, 1_700_000_000);
    hub_key
        .verify(&cosigned)
        .expect("the cosignature signs the note's text");
}
