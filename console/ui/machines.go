package ui

func (u *UI) machineRoutes() {}
