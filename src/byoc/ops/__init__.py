"""Operations: health and readiness (metrics and logging arrive with the operations work)."""
