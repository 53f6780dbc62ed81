"""Many clients at once: state stays consistent and ids stay unique."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import loopback
from tests.support.box_receiver import CHANNEL_ID, inbound_message
from tests.support.emulator import Emulator


def test_concurrent_messages_get_unique_contacts(emu: Emulator) -> None:
    token = emu.token()

    def send(index: int) -> str:
        with loopback.client(
            base_url=emu.api_url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            response = client.post(
                f"/channels/{CHANNEL_ID}/messages",
                json=inbound_message(f"m{index}", f"t{index}", f"c{index}"),
            )
            response.raise_for_status()
            contact_id: str = response.json()["consumerContact"]["id"]
            return contact_id

    with ThreadPoolExecutor(max_workers=16) as pool:
        contact_ids = list(pool.map(send, range(64)))
    assert len(set(contact_ids)) == 64
    assert len(emu.admin.get("/emulator/contacts").json()["data"]) == 64
