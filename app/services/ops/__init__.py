"""Operations: metrics, backup and restore (no Flask)."""
