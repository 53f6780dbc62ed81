from tests.webchat.conftest import webchat

__all__ = ["webchat"]
