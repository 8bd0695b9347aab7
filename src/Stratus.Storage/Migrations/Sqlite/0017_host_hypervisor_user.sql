-- Who a host's hypervisor processes run as ("stratus-qemu", "root (fallback: ...)"), as its agent registers it.
ALTER TABLE hosts ADD COLUMN hypervisor_user TEXT;
