"""Running labs: state files, owned processes, bring-up and teardown."""
