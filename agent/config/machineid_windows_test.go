package config

import "testing"

func TestParseMachineGUID(t *testing.T) {
	if b, err := parseMachineGUID("{6F9619FF-8B86-D011-B42D-00C04FC964FF}"); err != nil || string(b) != "6f9619ff-8b86-d011-b42d-00c04fc964ff" {
		t.Errorf("parseMachineGUID = %q, %v", b, err)
	}
	if _, err := parseMachineGUID("not a guid"); err == nil {
		t.Error("a non-GUID was accepted")
	}
}
