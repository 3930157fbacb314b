package ui

func (u *UI) catalogRoutes() {}
