//! One office's log as an RFC 9162 Merkle tree: leaf hash SHA-256(0x00 ‖ data), inner
//! node SHA-256(0x01 ‖ left ‖ right), leaves in append order.
//!
//! [`Tree`] keeps every complete, aligned subtree hash (about two hashes per leaf), so
//! the root, an inclusion proof and a consistency proof for **any** past tree size take
//! O(log² n) hashes: the auditor serves proofs against every checkpoint it ever signed.
//! (`ct-merkle`'s in-memory tree proves only against its current size and keeps every
//! leaf's data, so proofs are produced here, by the RFC's own recursive definitions,
//! and checked against the transparency-dev test vectors and `ct-merkle`.) Verification
//! is `ct-merkle`'s ([`verify_inclusion`], [`verify_consistency`]).

use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof cannot be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree size {size} is larger than the tree ({len} leaves)")]
    SizeTooLarge { size: u64, len: u64 },
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a consistency proof needs 0 < from ({from}) <= to ({to})")]
    BadRange { from: u64, to: u64 },
    #[error("the proof does not verify: {0}")]
    Invalid(String),
}

/// SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree of leaf hashes.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `levels[j][i]` is the hash of the complete subtree over leaves
    /// `[i·2^j, (i+1)·2^j)`; `levels[0]` are the leaf hashes.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of these leaf hashes, in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hashes, in order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let n = self.levels[level].len();
            let parent = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    /// MTH(D[start:end]) for 0 ≤ start < end ≤ len, as the RFC's recursion visits it.
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            return self.levels[level][(start / n) as usize];
        }
        let k = split(n);
        node_hash(
            &self.subtree(start, start + k),
            &self.subtree(start + k, end),
        )
    }

    fn check_size(&self, size: u64) -> Result<(), TreeError> {
        if size > self.len() {
            return Err(TreeError::SizeTooLarge {
                size,
                len: self.len(),
            });
        }
        Ok(())
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        self.check_size(size)?;
        Ok(if size == 0 {
            empty_root()
        } else {
            self.subtree(0, size)
        })
    }

    /// The audit path of leaf `index` in the tree of size `size`, leaf to root
    /// (RFC 9162 §2.1.3.1).
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_size(size)?;
        if index >= size {
            return Err(TreeError::IndexOutOfRange { index, size });
        }
        let mut path = Vec::new();
        self.path(index, 0, size, &mut path);
        Ok(path)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n == 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// The consistency proof between the trees of sizes `from` and `to`
    /// (RFC 9162 §2.1.4.1).
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_size(to)?;
        if from == 0 || from > to {
            return Err(TreeError::BadRange { from, to });
        }
        let mut proof = Vec::new();
        self.subproof(from, 0, to, true, &mut proof);
        Ok(proof)
    }

    fn subproof(&self, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

fn root_hash(root: &Hash, size: u64) -> RootHash<Sha256> {
    RootHash::new((*root).into(), size)
}

fn concat(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flatten().copied().collect()
}

/// Checks that `leaf_data` is leaf `index` of the tree of `size` leaves with `root`.
pub fn verify_inclusion(
    root: &Hash,
    size: u64,
    index: u64,
    leaf_data: &[u8],
    path: &[Hash],
) -> Result<(), TreeError> {
    let proof = InclusionProof::<Sha256>::try_from_bytes(concat(path))
        .map_err(|e| TreeError::Invalid(e.to_string()))?;
    root_hash(root, size)
        .verify_inclusion(&leaf_data, index, &proof)
        .map_err(|e| TreeError::Invalid(e.to_string()))
}

/// Checks that the tree (`old_size`, `old_root`) is a prefix of (`new_size`, `new_root`).
pub fn verify_consistency(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), TreeError> {
    if old_size == new_size {
        return if old_root == new_root && proof.is_empty() {
            Ok(())
        } else {
            Err(TreeError::Invalid(
                "equal sizes with different roots".into(),
            ))
        };
    }
    let proof = ConsistencyProof::<Sha256>::try_from_bytes(concat(proof))
        .map_err(|e| TreeError::Invalid(e.to_string()))?;
    root_hash(new_root, new_size)
        .verify_consistency(&root_hash(old_root, old_size), &proof)
        .map_err(|e| TreeError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    //! Known answers from transparency-dev/merkle (testonly/reference_test.go), as
    //! shipped in ct-merkle's own test suite.
    use super::*;

    const LEAVES: &[&str] = &[
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn tree(n: usize) -> Tree {
        Tree::from_leaves(LEAVES.iter().take(n).map(|l| leaf_hash(&unhex(l))))
    }

    fn hex_of(hashes: &[Hash]) -> String {
        hashes
            .iter()
            .flatten()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn roots_match_the_reference_vectors() {
        let roots = [
            (
                1,
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            ),
            (
                2,
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            ),
            (
                3,
                "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            ),
            (
                4,
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ),
            (
                5,
                "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            ),
            (
                6,
                "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            ),
            (
                7,
                "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            ),
            (
                8,
                "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
            ),
        ];
        for (n, root) in roots {
            assert_eq!(hex_of(&[tree(8).root(n).unwrap()]), root, "size {n}");
        }
        assert_eq!(
            hex_of(&[tree(0).root(0).unwrap()]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn inclusion_proofs_match_the_reference_vectors() {
        let vectors: &[(u64, u64, &str)] = &[
            (1, 0, ""),
            (
                2,
                0,
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            ),
            (
                2,
                1,
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            ),
            (
                3,
                2,
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            ),
            (
                5,
                1,
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031ebc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ),
            (
                8,
                0,
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc75f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ),
            (
                8,
                5,
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6bca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ),
        ];
        // Proved from the full tree of 8: proofs for past sizes come from the same tree.
        let t = tree(8);
        for &(size, index, expected) in vectors {
            let path = t.inclusion(index, size).unwrap();
            assert_eq!(hex_of(&path), expected, "size {size}, index {index}");
            let data = unhex(LEAVES[index as usize]);
            verify_inclusion(&t.root(size).unwrap(), size, index, &data, &path).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_match_the_reference_vectors() {
        let vectors: &[(u64, u64, &str)] = &[
            (1, 1, ""),
            (
                1,
                8,
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc75f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ),
            (
                2,
                5,
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031ebc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ),
            (
                6,
                8,
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6aca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ),
        ];
        let t = tree(8);
        for &(from, to, expected) in vectors {
            let proof = t.consistency(from, to).unwrap();
            assert_eq!(hex_of(&proof), expected, "{from} -> {to}");
            verify_consistency(
                from,
                &t.root(from).unwrap(),
                to,
                &t.root(to).unwrap(),
                &proof,
            )
            .unwrap();
        }
    }

    #[test]
    fn every_proof_up_to_40_leaves_verifies_with_ct_merkle_and_a_wrong_one_does_not() {
        let t = Tree::from_leaves((0u32..40).map(|i| leaf_hash(&i.to_be_bytes())));
        for size in 1..=40u64 {
            let root = t.root(size).unwrap();
            for index in 0..size {
                let path = t.inclusion(index, size).unwrap();
                let data = (index as u32).to_be_bytes();
                verify_inclusion(&root, size, index, &data, &path).unwrap();
                assert!(verify_inclusion(&root, size, index, b"other", &path).is_err());
            }
            for from in 1..=size {
                let proof = t.consistency(from, size).unwrap();
                let old = t.root(from).unwrap();
                verify_consistency(from, &old, size, &root, &proof).unwrap();
                if from < size {
                    let forged = t.root(from - 1).unwrap_or(old);
                    assert!(verify_consistency(from, &forged, size, &root, &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn sizes_beyond_the_tree_are_refused() {
        let t = tree(3);
        assert!(matches!(t.root(4), Err(TreeError::SizeTooLarge { .. })));
        assert!(matches!(
            t.inclusion(3, 3),
            Err(TreeError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            t.consistency(0, 3),
            Err(TreeError::BadRange { .. })
        ));
    }
}
