//! Generates `sandbox-exec` profiles (SBPL) for the macOS fallback. (Being implemented.)
