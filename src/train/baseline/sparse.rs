//! A compressed-sparse-row matrix of `f64`, the hand-over between the
//! vectorizer and the solver.
//!
//! The vectorizer builds it in plain Rust (so its values can be checked entry
//! by entry against scikit-learn's `csr_matrix`), and the solver turns it into
//! a libtorch sparse CSR tensor once per fit, for sparse × dense products.
use crate::error::{Error, Result};
use tch::{Device, Kind, Tensor};

/// A sparse `n_rows × n_cols` matrix in CSR form, column indices sorted
/// within each row, as scikit-learn's `csr_matrix` after `sort_indices()`.
///
/// ```
/// use encoder_bench::train::baseline::CsrMatrix;
/// // [[1, 0, 2],
/// //  [0, 0, 0],
/// //  [0, 3, 0]]
/// let m = CsrMatrix::new(3, 3, vec![0, 2, 2, 3], vec![0, 2, 1], vec![1.0, 2.0, 3.0])?;
/// assert_eq!(m.nnz(), 3);
/// assert_eq!(m.get(0, 2), 2.0);
/// assert_eq!(m.get(1, 1), 0.0);
/// assert_eq!(m.transpose().get(1, 2), 3.0);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    values: Vec<f64>,
}

impl CsrMatrix {
    /// A matrix from its CSR arrays: row `i` holds `values[indptr[i]..indptr[i + 1]]`
    /// at columns `indices[indptr[i]..indptr[i + 1]]`.
    ///
    /// Fails with [`Error::Invalid`] unless `indptr` has `n_rows + 1` entries,
    /// starts at 0, never decreases and ends at `indices.len() == values.len()`,
    /// and each row's columns are strictly increasing and `< n_cols`.
    pub fn new(n_rows: usize, n_cols: usize, indptr: Vec<usize>, indices: Vec<usize>, values: Vec<f64>) -> Result<CsrMatrix> {
        let bad = |msg: String| Err(Error::invalid("CsrMatrix", msg));
        if indptr.len() != n_rows + 1 || indptr[0] != 0 {
            return bad(format!("indptr must have {} entries starting at 0, got {:?}…", n_rows + 1, indptr.first()));
        }
        if indices.len() != values.len() || indptr[n_rows] != indices.len() {
            return bad(format!("indptr ends at {} but there are {} indices and {} values", indptr[n_rows], indices.len(), values.len()));
        }
        for (i, w) in indptr.windows(2).enumerate() {
            if w[0] > w[1] {
                return bad(format!("indptr decreases at row {i}"));
            }
            let cols = &indices[w[0]..w[1]];
            if cols.windows(2).any(|c| c[0] >= c[1]) || cols.last().is_some_and(|&c| c >= n_cols) {
                return bad(format!("row {i}: columns must be strictly increasing and < {n_cols}"));
            }
        }
        Ok(CsrMatrix { n_rows, n_cols, indptr, indices, values })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The stored entries of row `i`: its column indices and values.
    /// Panics if `i >= n_rows`, like slice indexing.
    pub fn row(&self, i: usize) -> (&[usize], &[f64]) {
        let (lo, hi) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[lo..hi], &self.values[lo..hi])
    }

    /// Entry `(i, j)`, 0 where nothing is stored (or out of range).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        if i >= self.n_rows {
            return 0.0;
        }
        let (cols, vals) = self.row(i);
        cols.binary_search(&j).map_or(0.0, |k| vals[k])
    }

    /// The transposed matrix, again in CSR form (a counting sort by column,
    /// which keeps the new rows' columns sorted).
    pub fn transpose(&self) -> CsrMatrix {
        let mut indptr = vec![0usize; self.n_cols + 1];
        for &j in &self.indices {
            indptr[j + 1] += 1;
        }
        for j in 0..self.n_cols {
            indptr[j + 1] += indptr[j];
        }
        let mut next = indptr.clone();
        let mut indices = vec![0usize; self.nnz()];
        let mut values = vec![0.0; self.nnz()];
        for i in 0..self.n_rows {
            let (cols, vals) = self.row(i);
            for (&j, &v) in cols.iter().zip(vals) {
                indices[next[j]] = i;
                values[next[j]] = v;
                next[j] += 1;
            }
        }
        CsrMatrix { n_rows: self.n_cols, n_cols: self.n_rows, indptr, indices, values }
    }

    /// The same matrix as a libtorch sparse CSR tensor of `f64` on the CPU,
    /// ready for `mm` with a dense matrix.
    ///
    /// ```
    /// use encoder_bench::train::baseline::CsrMatrix;
    /// let m = CsrMatrix::new(2, 2, vec![0, 1, 2], vec![1, 0], vec![2.0, 3.0])?;
    /// let y = m.to_tensor()?.mm(&tch::Tensor::from_slice(&[1.0f64, 10.0]).view([2, 1]));
    /// assert_eq!(Vec::<f64>::try_from(y.view([-1])).unwrap(), vec![20.0, 3.0]);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn to_tensor(&self) -> Result<Tensor> {
        let as_i64 = |v: &[usize]| Tensor::from_slice(&v.iter().map(|&x| x as i64).collect::<Vec<_>>());
        let size = [self.n_rows as i64, self.n_cols as i64];
        Tensor::f_sparse_csr_tensor_crow_col_value_size(
            &as_i64(&self.indptr),
            &as_i64(&self.indices),
            &Tensor::from_slice(&self.values),
            size,
            (Kind::Double, Device::Cpu),
        )
        .map_err(|e| Error::torch(format!("building a {}×{} sparse tensor", self.n_rows, self.n_cols), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> CsrMatrix {
        CsrMatrix::new(3, 4, vec![0, 2, 2, 5], vec![1, 3, 0, 1, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0]).unwrap()
    }

    #[test]
    fn rejects_malformed_arrays() {
        assert!(CsrMatrix::new(2, 2, vec![0, 1], vec![0], vec![1.0]).is_err(), "indptr too short");
        assert!(CsrMatrix::new(1, 2, vec![0, 2], vec![1, 0], vec![1.0, 1.0]).is_err(), "unsorted columns");
        assert!(CsrMatrix::new(1, 2, vec![0, 1], vec![2], vec![1.0]).is_err(), "column out of range");
        assert!(CsrMatrix::new(1, 2, vec![0, 1], vec![0], vec![]).is_err(), "missing value");
        assert!(CsrMatrix::new(0, 5, vec![0], vec![], vec![]).is_ok(), "empty matrix");
    }

    #[test]
    fn transpose_twice_is_identity() {
        let m = example();
        let t = m.transpose();
        assert_eq!((t.n_rows(), t.n_cols()), (4, 3));
        for i in 0..3 {
            for j in 0..4 {
                assert_eq!(m.get(i, j), t.get(j, i));
            }
        }
        assert_eq!(t.transpose(), m);
    }

    #[test]
    fn tensor_product_matches_dense() {
        let m = example();
        let w = Tensor::arange(8, (Kind::Double, Device::Cpu)).view([4, 2]);
        let got = Vec::<f64>::try_from(m.to_tensor().unwrap().mm(&w).view([-1])).unwrap();
        let mut want = vec![0.0; 6];
        for i in 0..3 {
            for k in 0..2 {
                want[i * 2 + k] = (0..4).map(|j| m.get(i, j) * (j * 2 + k) as f64).sum();
            }
        }
        assert_eq!(got, want);
    }
}
