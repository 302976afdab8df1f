"""Tests of the stack plugin kind: the specs against their .tf files, and a throwaway stack."""
