"""Image-quality metrics as MRIQC defines them, with numpy, scipy and nibabel only (no FSL, ANTs, AFNI)."""
