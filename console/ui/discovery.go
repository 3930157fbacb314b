package ui

func (u *UI) discoveryRoutes() {}
